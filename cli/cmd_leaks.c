#include "cli.h"
int ap_cmd_leaks(int argc, char **argv) { ap_cli_error("leaks: todo"); return 2; }
