/* Reset, vector table and stack painting: no vendor startup code, no C library.
 *
 * Reset_Handler copies .data, zeroes .bss, fills the stack region below the current frame with
 * STACK_PAINT (the peak is found later by scanning for the first word that changed), turns on the
 * FPU where the core has one, then calls main(). Every fault goes to fw_fault() with the stacked PC.
 */
#include "fw.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end;
int main(void);

__attribute__((noreturn)) void Reset_Handler(void)
{
    uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = &__stack_bottom; p < sp - 16; p++) /* 64 bytes of margin below this frame */
        *p = STACK_PAINT;
#if defined(__ARM_FP)
    SCB_CPACR |= 0xFu << 20; /* CP10 and CP11 full access: the hard-float ABI uses FP registers */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    main();
    board_exit(0);
}

uint32_t fw_stack_peak_bytes(void)
{
    const uint32_t *p = &__stack_bottom;
    while (p < &__stack_top && *p == STACK_PAINT)
        p++;
    return (uint32_t)((const char *)&__stack_top - (const char *)p);
}

/* Faults: pass the stacked PC and LR (from whichever stack was active) to fw_fault. */
__attribute__((naked)) void Fault_Handler(void)
{
    __asm__ volatile(
        "tst lr, #4\n\t"
        "ite eq\n\t"
        "mrseq r2, msp\n\t"
        "mrsne r2, psp\n\t"
        "ldr r0, [r2, #24]\n\t" /* stacked PC */
        "ldr r1, [r2, #20]\n\t" /* stacked LR */
        "b fw_fault\n\t");
}

static void Default_Handler(void)
{
    fw_fault(0xFFFFFFFFu, SCB_ICSR & 0x1FFu); /* an unexpected interrupt: report its number */
}

static void SysTick_Handler(void) { board_systick_irq(); }

#define VECTORS (16 + BOARD_NUM_IRQS)

typedef void (*vector_t)(void);
__attribute__((section(".vectors"), used)) const vector_t fw_vectors[VECTORS] = {
    [0] = (vector_t)(uintptr_t)&__stack_top,
    [1] = (vector_t)Reset_Handler,
    [2] = Default_Handler,  /* NMI */
    [3] = Fault_Handler,    /* HardFault */
    [4] = Fault_Handler,    /* MemManage */
    [5] = Fault_Handler,    /* BusFault */
    [6] = Fault_Handler,    /* UsageFault */
    [7] = Fault_Handler,    /* SecureFault (v8-M), reserved on v7-M */
    [11] = Default_Handler, /* SVCall */
    [12] = Default_Handler, /* DebugMonitor */
    [14] = Default_Handler, /* PendSV */
    [15] = SysTick_Handler,
    [16 ... VECTORS - 1] = Default_Handler,
    [16 + BOARD_UART_IRQ] = board_uart_irq,
};
