set pagination off
set trace-commands on
target remote 127.0.0.1:PORT
source gdbext/nested.gdb
nested attach
p/x $pc
p/x $cr3
x/s 0x5a5a00042000
nested ncr3 0x53e6000 --levels 5
nested mode auto
nested info
nx/s 0x5a5a00042000
nx/4gx 0x5a5a00042000
nested vtop 0x5a5a00042000
nested p (char (*)[22])0x5a5a00042000
nested ptdump --user
nested mode l1
nested cr3 0x51c4000 --levels 5
nx/s 0xffffffff8211ffe0
disconnect
