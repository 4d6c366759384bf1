/* qemu-user 7.2 and an AVX2 gather whose vector index register is ymm4 (tests/README.md, "Emulated CPUs").
 *
 *   gcc -O1 -mavx2 tests/qemu_vsib.c -o /tmp/qemu_vsib && /tmp/qemu_vsib && qemu-x86_64 -cpu Haswell /tmp/qemu_vsib
 *
 * Natively both lines read 100 101 ... 106 -1 (lane i gathers base[i]; lane 7 is masked off and keeps -1).
 * Under qemu 7.2 the ymm4 line reads 100 in every gathered lane: the index register was taken as "no index",
 * as an ordinary SIB byte's index 4 would be. torch's float32 AVX2 grid_sample kernel gathers with ymm4 as
 * its index and so reads from wrong addresses under qemu, and crashes. */
#include <stdio.h>

#define GATHER(INDEX)                                                                                        \
  __asm__ volatile("vmovdqu (%1), %%" INDEX "\n\t"                                                           \
                   "vmovdqu (%2), %%ymm11\n\t"                                                               \
                   "vbroadcastss %4, %%ymm1\n\t"                                                             \
                   "vgatherdps %%ymm11, (%3,%%" INDEX ",4), %%ymm1\n\t"                                      \
                   "vmovups %%ymm1, (%0)\n\t"                                                                \
                   :                                                                                         \
                   : "r"(out), "r"(index), "r"(mask), "r"(base), "m"(minus_one)                              \
                   : "xmm1", "xmm4", "xmm11", "xmm12", "memory")

static void show(const char *name, const float *out) {
  printf("index register %-5s:", name);
  for (int i = 0; i < 8; i++) printf(" %g", out[i]);
  printf("\n");
}

int main(void) {
  float base[8], out[8], minus_one = -1.0f;
  int index[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  int mask[8] = {-1, -1, -1, -1, -1, -1, -1, 0};
  for (int i = 0; i < 8; i++) base[i] = 100 + i;
  GATHER("ymm4");
  show("ymm4", out);
  GATHER("ymm12");
  show("ymm12", out);
  return 0;
}
