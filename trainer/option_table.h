// Options defined once and used four ways: Boost.Program_options parsing
// (command line, then a --config INI file; the command line wins), the
// generated --help, the Markdown tables of docs/trainer.md (--help
// --markdown; a test keeps the docs equal to them), and the effective
// configuration (the table printed at start and config.ini, which --config
// reads back).
#pragma once

#include <boost/program_options.hpp>

#include <functional>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace mone {

// Text of a value as --help, the table and config.ini show it.
std::string option_text(const std::string& value);
std::string option_text(double value);
std::string option_text(bool value);
template <class T>
std::string option_text(T value) {
  return std::to_string(value);
}

class OptionTable {
 public:
  // `usage` heads --help ("Usage: mone train --data DIR --run-dir DIR [options]").
  explicit OptionTable(const std::string& usage);

  // An option bound to *target, whose current value is the default.
  // `documented_default` replaces the value in the Markdown table where the
  // default depends on the machine ("cores / local ranks").
  template <class T>
  void add(const std::string& name, T* target, const std::string& help, const std::string& documented_default = "") {
    options_.add_options()(name.c_str(), boost::program_options::value(target)->default_value(*target, option_text(*target)),
                           help.c_str());
    remember(name, help, documented_default.empty() ? option_text(*target) : documented_default,
             [target] { return option_text(*target); });
  }
  // A flag (no value on the command line; "name = true" in a config file).
  void add_flag(const std::string& name, bool* target, const std::string& help);

  // Parses `args` (without the program and subcommand names). Returns false
  // when --help was asked for (the help, or with --markdown the Markdown
  // table, is written to `help_out`). Throws
  // UsageError naming the option for unknown options, bad values and a bad
  // --config file.
  bool parse(const std::vector<std::string>& args, std::ostream& help_out);

  // Every option as "name", "value" in definition order, reading the bound
  // variables now: after the caller has resolved defaults (a preset's model
  // fields) this is the effective configuration.
  std::vector<std::pair<std::string, std::string>> entries() const;
  // The entries as INI text ("name = value" lines), which --config accepts.
  std::string ini() const;
  // The entries as an aligned two-column table.
  void print(std::ostream& out) const;
  // The options as a Markdown table: option, default, meaning.
  void markdown(std::ostream& out) const;

 private:
  struct Option {
    std::string name, help, default_text;
    std::function<std::string()> text;  // the bound value now
  };
  void remember(const std::string& name, const std::string& help, const std::string& default_text,
                std::function<std::string()> text);
  boost::program_options::options_description options_;
  std::vector<Option> defined_;
  std::string config_file_;
};

}  // namespace mone
