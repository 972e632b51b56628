# A live session: QEMU held at its first instruction, the GDB extension
# loaded, a hardware breakpoint at start_kernel, memory read from the RAM
# file. Replay (from the top of the tree, after `make`):
#   qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 512M \
#     -object memory-backend-file,id=pc.ram,share=on,mem-path=/tmp/guest.ram,size=512M \
#     -machine memory-backend=pc.ram -kernel $KDIR/vmlinuz -append 'console=ttyS0 nokaslr' \
#     -display none -gdb unix:/tmp/guest.gdb,server=on,wait=off -S &
#   gdb -batch -nx $KDIR/vmlinux -x examples/gdbext-live.gdb
# ($KDIR is the directory scripts/fetch-kernel prints.)
set pagination off
set trace-commands on
source gdbext/nested.gdb
b start_kernel
target remote /tmp/guest.gdb
nested attach
b do_one_initcall if initcall_debug
info breakpoints
continue
nested info
nx/4gx &linux_banner
x/4gx &linux_banner
nx/s &linux_banner
nx/2a &init_task.tasks
nested vtop &linux_banner
nested ptdump --kernel
nested p &init_task.comm
nested p/x &init_task.pid
# disconnect, not detach: QEMU's VM stays stopped
disconnect
