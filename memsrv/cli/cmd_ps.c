#include <stdio.h>
#include <string.h>

#include "linux.h"
#include "tasks.h"

int cmd_ps(struct cli *cli, int argc, char **argv)
{
    bool no_vmci = argc == 2 && !strcmp(argv[1], "--no-vmcoreinfo");
    if (argc != 1 && !no_vmci)
        return cli_usage("usage: ps   (needs --vmlinux for task_struct's layout)");
    struct ms_kernel *k;
    if (cli_linux_open(cli, &k, no_vmci))
        return cli_fail(cli);
    struct ms_task_list l;
    int rc = ms_tasks_list(k, 0, &l, &cli->err);
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_tasks_format(&l, &sb);
    fwrite(ms_strbuf_str(&sb), 1, sb.len, stdout);
    ms_strbuf_free(&sb);
    if (l.bad)
        fprintf(stderr, "memsrv: ps: %llu tasks had unreadable fields\n",
                (unsigned long long)l.bad);
    ms_task_list_free(&l);
    ms_kernel_close(k);
    return rc < 0 ? cli_fail(cli) : 0;
}
