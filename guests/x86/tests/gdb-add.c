/* x86-64 guest of the KVM gdb test (test/vmm/arch/x86-kvm-gdb.test.ts builds it with gcc, -g):
   calls add(40, 2), which stores the sum in `total`, and writes the result to the exit port
   0xf4, so the run ends with status 42. Starts in long mode on the stack the VMM set up. */

static void outb(unsigned short port, unsigned char value) {
  __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

volatile int total;

__attribute__((noinline)) int add(int a, int b) {
  total = a + b;
  return total;
}

void _start(void) {
  int r = add(40, 2);
  outb(0xf4, (unsigned char)r);
  for (;;) __asm__ volatile("hlt");
}
