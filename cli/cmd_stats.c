#include "cli.h"
int ap_cmd_stats(int argc, char **argv) { ap_cli_error("stats: todo"); return 2; }
