#include "cli.h"
int ap_cmd_flamegraph(int argc, char **argv) { ap_cli_error("flamegraph: todo"); return 2; }
