#include "cli.h"
int ap_cmd_diff(int argc, char **argv) { ap_cli_error("diff: todo"); return 2; }
