# A post-crash session on a synthetic Intel EPT image (no QEMU): an L1 with
# 4-level paging, an EPT, and an L2 whose page tables live in L2-physical
# memory. GDB's own x cannot see L2; nx can. Replay (top of the tree):
#   /usr/bin/python3 tests/integration/gdbext_image.py /tmp/eptimg
#   cd /tmp/eptimg && gdb -batch -nx -ex "source $TREE/gdbext/nested.gdb" \
#       -x $TREE/examples/gdbext-postcrash.gdb
set pagination off
set trace-commands on
file syms.elf
core-file guest.core
nested attach guest.ram --map 0:4M@0
nested eptp 0x1001e
nested cr3 0x1000 --levels 4
nested mode l2
nested info
x/s 0x5a5a00042000
nx/s 0x5a5a00042000
nx/6gx 0x5a5a00042ff0
nested vtop 0x5a5a00042000
nested ptdump
nested p (char (*)[22])0x5a5a00042000
nested mode l1
nested cr3 auto
nested cr3 0x1000
nx/2gx kstart
x/2gx kstart
