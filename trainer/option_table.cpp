#include "trainer/option_table.h"

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <ostream>

#include "trainer/exit_codes.h"
#include "trainer/metrics.h"

namespace po = boost::program_options;

namespace mone {

namespace {
// A Markdown table cell: a '|' would end the cell.
std::string markdown_cell(const std::string& text) {
  std::string cell;
  for (const char c : text) cell += c == '|' ? std::string("\\|") : std::string(1, c);
  return cell;
}
}  // namespace

std::string option_text(const std::string& value) { return value; }
std::string option_text(double value) { return format_double(value); }
std::string option_text(bool value) { return value ? "true" : "false"; }

OptionTable::OptionTable(const std::string& usage) : options_(usage + "\n\nOptions") {
  options_.add_options()("help,h", "show this help")(
      "markdown", "with --help: the options as a Markdown table (docs/trainer.md)")(
      "config", po::value(&config_file_),
      "INI file of 'option = value' lines (a run's config.ini works); the command line wins");
}

void OptionTable::add_flag(const std::string& name, bool* target, const std::string& help) {
  options_.add_options()(name.c_str(), po::bool_switch(target), help.c_str());
  remember(name, help, option_text(*target), [target] { return option_text(*target); });
}

void OptionTable::remember(const std::string& name, const std::string& help, const std::string& default_text,
                           std::function<std::string()> text) {
  defined_.push_back({name, help, default_text, std::move(text)});
}

bool OptionTable::parse(const std::vector<std::string>& args, std::ostream& help_out) {
  po::variables_map values;
  try {
    po::store(po::command_line_parser(args).options(options_).run(), values);
  } catch (const po::error& error) {
    throw UsageError(error.what());  // Boost's messages name the option
  }
  if (values.count("help")) {
    if (values.count("markdown")) {
      markdown(help_out);
    } else {
      help_out << options_ << "\n";
    }
    return false;
  }
  if (values.count("config")) {
    const std::string file = values["config"].as<std::string>();
    std::ifstream in(file);
    if (!in) throw UsageError("--config: cannot read '" + file + "'");
    try {
      // Stored second: a value already set on the command line is kept.
      po::store(po::parse_config_file(in, options_), values);
    } catch (const po::error& error) {
      throw UsageError("--config '" + file + "': " + error.what());
    }
  }
  try {
    po::notify(values);
  } catch (const po::error& error) {
    throw UsageError(error.what());
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> OptionTable::entries() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Option& option : defined_) out.emplace_back(option.name, option.text());
  return out;
}

std::string OptionTable::ini() const {
  std::string text;
  for (const auto& [name, value] : entries()) text += name + " = " + value + "\n";
  return text;
}

void OptionTable::print(std::ostream& out) const {
  const auto rows = entries();
  size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  for (const auto& [name, value] : rows) out << "  " << std::left << std::setw(static_cast<int>(width)) << name << "  " << value << "\n";
}

void OptionTable::markdown(std::ostream& out) const {
  out << "| option | default | meaning |\n|---|---|---|\n";
  for (const Option& option : defined_) {
    const std::string shown = option.default_text.empty() ? "" : "`" + markdown_cell(option.default_text) + "`";
    out << "| `--" << option.name << "` | " << shown << " | " << markdown_cell(option.help) << " |\n";
  }
}

}  // namespace mone
