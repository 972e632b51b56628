#include <stdio.h>
#include <string.h>

#include "linux.h"
#include "tasks.h"

int cmd_ps(struct cli *cli, int argc, char **argv)
{
    bool no_vmci = false, stats = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-vmcoreinfo"))
            no_vmci = true;
        else if (!strcmp(argv[i], "--stats"))
            stats = true;
        else
            return cli_usage("usage: ps [--stats] [--no-vmcoreinfo]   (task_struct's layout from "
                             "--vmlinux's DWARF, else the kernel's own BTF)");
    }
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
    if (stats && rc == 0) {
        fprintf(stderr, "memsrv: ps: %zu tasks (kernel: %s; types: %s", l.count, k->how,
                k->types.source);
        if (k->btf)
            fprintf(stderr, ", read and parsed in %.1f ms", k->btf_load_ms);
        fprintf(stderr, ")\n");
    }
    ms_task_list_free(&l);
    ms_kernel_close(k);
    return rc < 0 ? cli_fail(cli) : 0;
}
