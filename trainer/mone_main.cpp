// mone: the trainer's command line (train, eval). See docs/trainer.md.
#include "trainer/cli.h"

int main(int argc, char** argv) { return mone::run_command_line(argc, argv); }
