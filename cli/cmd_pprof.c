#include "cli.h"
int ap_cmd_pprof(int argc, char **argv) { ap_cli_error("pprof: todo"); return 2; }
