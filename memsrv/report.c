#include "report.h"

#include <inttypes.h>
#include <string.h>

#include "pte.h"

void ms_report_stack(const struct ms_space *space, struct ms_strbuf *out)
{
    for (const struct ms_space *s = space; s; s = s->lower) {
        switch (s->kind) {
        case MS_SPACE_PHYS:
            ms_strbuf_printf(out, "guest-physical RAM");
            break;
        case MS_SPACE_PAGING:
            ms_strbuf_printf(out, "%u-level paging (CR3 0x%" PRIx64 ")", s->levels, s->root);
            break;
        case MS_SPACE_NPT:
            ms_strbuf_printf(out, "%u-level NPT (nCR3 0x%" PRIx64 ")", s->levels, s->root);
            break;
        case MS_SPACE_EPT:
            ms_strbuf_printf(out, "%u-level EPT (EPTP 0x%" PRIx64 "%s)", s->levels, s->root,
                             s->ept_ad ? ", A/D on" : "");
            break;
        }
        if (s->lower)
            ms_strbuf_printf(out, " over ");
    }
}

void ms_perm_text(const struct ms_space *space, unsigned perms, char out[8])
{
    out[0] = perms & MS_PERM_R ? 'r' : '-';
    out[1] = perms & MS_PERM_W ? 'w' : '-';
    out[2] = perms & MS_PERM_X ? 'x' : '-';
    out[3] = ' ';
    if (space->kind == MS_SPACE_EPT)
        out[4] = perms & MS_PERM_U ? 'X' : '-'; /* user-execute (MBEC) */
    else
        out[4] = perms & MS_PERM_U ? 'u' : 's';
    out[5] = '\0';
}

static const char *space_label(enum ms_space_kind kind)
{
    switch (kind) {
    case MS_SPACE_PHYS:
        return "guest-physical";
    case MS_SPACE_PAGING:
        return "virtual";
    case MS_SPACE_NPT:
    case MS_SPACE_EPT:
        return "nested-physical";
    }
    return "?";
}

static const char *size_text(uint64_t size)
{
    return size >= (1ULL << 30) ? "1 GiB" : size >= (1ULL << 21) ? "2 MiB" : "4 KiB";
}

static void write_trace(const struct ms_trace *trace, struct ms_strbuf *out)
{
    for (unsigned i = 0; i < trace->count; i++) {
        const struct ms_trace_entry *e = &trace->entries[i];
        char desc[96];
        ms_pte_describe(e->kind == MS_SPACE_EPT ? MS_PTE_EPT : MS_PTE_X86, e->value, e->level, desc,
                        sizeof(desc));
        ms_strbuf_printf(out, "%*s%-6s %-5s[%3u] at 0x%" PRIx64, 2 + 4 * e->depth, "",
                         ms_space_kind_name(e->kind), ms_level_name(e->level), e->index,
                         e->entry_addr);
        if (e->entry_phys != e->entry_addr)
            ms_strbuf_printf(out, " (phys 0x%" PRIx64 ")", e->entry_phys);
        ms_strbuf_printf(out, " = 0x%016" PRIx64 "  %s\n", e->value, desc);
    }
}

int ms_report_vtop(struct ms_space *space, uint64_t addr, struct ms_strbuf *out, struct ms_err *err)
{
    struct ms_trace trace;
    struct ms_xlat x;
    int rc = ms_space_translate(space, addr, &x, &trace, err);
    ms_strbuf_printf(out, "0x%" PRIx64 " in ", addr);
    ms_report_stack(space, out);
    ms_strbuf_printf(out, "\n");
    write_trace(&trace, out);
    if (rc)
        return rc;
    char perms[8];
    ms_perm_text(space, x.perms, perms);
    ms_strbuf_printf(out, "0x%" PRIx64 " (%s)", addr, space_label(space->kind));
    /* Walk the chain down, one dimension at a time, for the intermediate addresses. */
    uint64_t a = x.lower;
    for (struct ms_space *s = space->lower; s; s = s->lower) {
        ms_strbuf_printf(out, " -> 0x%" PRIx64 " (%s)", a, space_label(s->kind));
        if (s->kind == MS_SPACE_PHYS)
            break;
        struct ms_xlat below;
        rc = ms_space_translate(s, a, &below, NULL, err);
        if (rc)
            return rc;
        a = below.lower;
    }
    ms_strbuf_printf(out, "\n  %s page, %s", size_text(x.page_size), perms);
    if (space->lower && space->lower->kind != MS_SPACE_PHYS) {
        struct ms_xlat second;
        rc = ms_space_translate(space->lower, x.lower, &second, NULL, err);
        if (rc)
            return rc;
        char p2[8];
        ms_perm_text(space->lower, second.perms, p2);
        ms_strbuf_printf(out, "; %s: %s page, %s", ms_space_kind_name(space->lower->kind),
                         size_text(second.page_size), p2);
    }
    ms_strbuf_printf(out, "\n");
    return 0;
}

struct ptdump_state {
    const struct ms_space *space;
    struct ms_strbuf *out;
    bool open;
    uint64_t start, end, lower; /* current range: [start, end) -> lower */
    unsigned perms;
    uint64_t pages, page_size; /* page_size 0 once sizes are mixed */
    uint64_t ranges;
};

static void ptdump_flush(struct ptdump_state *st)
{
    if (!st->open)
        return;
    char perms[8];
    ms_perm_text(st->space, st->perms, perms);
    ms_strbuf_printf(st->out,
                     "0x%016" PRIx64 "-0x%016" PRIx64 " %12" PRIx64 " -> 0x%-12" PRIx64
                     " %s  %" PRIu64 " x %s\n",
                     st->start, st->end - 1, st->end - st->start, st->lower, perms, st->pages,
                     st->page_size ? size_text(st->page_size) : "mixed");
    st->ranges++;
    st->open = false;
}

static int ptdump_add(void *arg, const struct ms_mapping *m)
{
    struct ptdump_state *st = arg;
    if (st->open && m->addr == st->end && m->lower == st->lower + (st->end - st->start) &&
        m->perms == st->perms) {
        st->end += m->size;
        st->pages++;
        if (st->page_size != m->size)
            st->page_size = 0;
        return 0;
    }
    ptdump_flush(st);
    *st = (struct ptdump_state){st->space, st->out,  true, m->addr, m->addr + m->size,
                                m->lower,  m->perms, 1,    m->size, st->ranges};
    return 0;
}

int ms_report_ptdump(struct ms_space *space, uint64_t start, uint64_t end, struct ms_strbuf *out,
                     struct ms_err *err)
{
    if (space->kind == MS_SPACE_PHYS)
        return ms_err_set(err, MS_EINVAL,
                          "ptdump needs page tables (a stack with CR3, EPTP or "
                          "nCR3)");
    struct ptdump_state st = {space, out, false, 0, 0, 0, 0, 0, 0, 0};
    uint64_t bad = 0;
    ms_strbuf_printf(out, "%-37s %12s    %-14s %-5s  %s\n", "range", "size", "lower", "perms",
                     "pages");
    int rc = ms_space_enumerate(space, start, end, ptdump_add, &st, 0, &bad, err);
    ptdump_flush(&st);
    if (bad)
        ms_strbuf_printf(out, "(%" PRIu64 " tables or entries unreadable or malformed, skipped)\n",
                         bad);
    if (!rc && st.ranges == 0)
        ms_strbuf_printf(out, "(no mappings)\n");
    return rc;
}
