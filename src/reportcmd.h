/*
 * reportcmd.h - jitctl's offline commands over audit log files (no daemon
 * needed): `jitctl audit verify FILE...` and `jitctl report ... FILE...`.
 * Each takes argv from its command name on and returns the exit status:
 * 0 ok (chain intact), 1 the chain is broken or a file is damaged (the
 * report is still written), 2 usage, 3 a file cannot be opened or written.
 */
#ifndef JITD_REPORTCMD_H
#define JITD_REPORTCMD_H

#include <stdio.h>

int reportcmd_audit(int argc, char **argv);
int reportcmd_report(int argc, char **argv);
void reportcmd_usage(FILE *fp);

#endif
