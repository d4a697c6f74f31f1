// mone-data: the dataset converter as a tool of its own (also `mone data`).
#include "data/data_command.h"

int main(int argc, char** argv) { return mone::run_data_command("mone-data", {argv + 1, argv + argc}); }
