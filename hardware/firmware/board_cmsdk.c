/* ARM MPS2 FPGA images under QEMU (an385, an386, an500, an505): CMSDK APB UART0, SysTick as an
 * instruction counter, semihosting exit.
 *
 * Counting: QEMU has no DWT cycle counter (CYCCNT reads 0). Under a fixed `-icount shift=N` every
 * instruction advances virtual time by 2^N ns and SysTick (clocked from the system clock,
 * CLKSOURCE=1) ticks every BOARD_NS_PER_TICK ns, so ticks * ns_per_tick / 2^N = instructions
 * executed. The counter is 24 bits wide: wraps are counted in the SysTick interrupt.
 * The results are instructions, not cycles.
 */
#include "fw.h"

/* CMSDK APB UART registers */
#define UART_DATA REG32(BOARD_UART_BASE + 0x00u)
#define UART_STATE REG32(BOARD_UART_BASE + 0x04u)  /* bit0 TX full, bit1 RX full */
#define UART_CTRL REG32(BOARD_UART_BASE + 0x08u)   /* bit0 TX en, bit1 RX en, bit3 RX irq en */
#define UART_INT REG32(BOARD_UART_BASE + 0x0Cu)    /* write 1 to clear: bit1 RX */
#define UART_BAUDDIV REG32(BOARD_UART_BASE + 0x10u)

#define SYSTICK_RELOAD 0x00FFFFFFu

const uint32_t board_counter_kind = COUNTER_INSTRUCTIONS;
static volatile uint32_t systick_wraps;

void board_init(void)
{
    UART_BAUDDIV = 16;  /* the smallest legal divider; QEMU does not model the bit rate */
    UART_CTRL = 0x1u | 0x2u | 0x8u;
    NVIC_ISER(BOARD_UART_IRQ / 32) = 1u << (BOARD_UART_IRQ % 32);
    SYST_RVR = SYSTICK_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x7u;    /* enable, interrupt on wrap, CPU clock */
}

void board_putc(uint8_t c)
{
    while (UART_STATE & 1u)
        ;
    UART_DATA = c;
}

void board_flush(void)
{
    while (UART_STATE & 1u)
        ;
}

void board_uart_irq(void)
{
    /* clear first, then drain: a byte landing after the last check raises the flag again
     * (clearing after the drain could swallow that flag and leave the byte stuck forever) */
    UART_INT = 2u;
    while (UART_STATE & 2u)
        fw_rx_byte((uint8_t)UART_DATA);
}

void board_systick_irq(void) { systick_wraps++; }

uint64_t board_counter(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    uint32_t val = SYST_CVR, wraps = systick_wraps;
    if (SCB_ICSR & ICSR_PENDSTSET) { /* wrapped, handler not yet run: VAL may be before or after */
        val = SYST_CVR;
        wraps++;
    }
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
    return (uint64_t)wraps * (SYSTICK_RELOAD + 1u) + (SYSTICK_RELOAD - val);
}

/* Restart SysTick so its wrap interrupts land at the same points of every run: the host's timing
 * moves the counter's phase while the firmware idles in WFI, and an exception frame stacked at the
 * model's deepest call would change the measured stack peak by its 32 bytes from run to run. */
void board_counter_restart(void)
{
    __asm__ volatile("cpsid i" ::: "memory");
    SYST_CVR = 0;                  /* clears the count; it reloads on the next tick */
    while (SYST_CVR == 0)
        ;
    SCB_ICSR = ICSR_PENDSTCLR;     /* a wrap from before the restart is not this run's */
    systick_wraps = 0;
    __asm__ volatile("cpsie i" ::: "memory");
}

uint64_t board_counter_units(uint64_t ticks)
{
    /* round(ticks * ns_per_tick / 2^N): exact, since one tick is less than half an instruction */
    return (ticks * BOARD_NS_PER_TICK + (1u << (BOARD_ICOUNT_SHIFT - 1))) >> BOARD_ICOUNT_SHIFT;
}

void board_exit(int code)
{
    /* semihosting SYS_EXIT_EXTENDED: r0 = 0x20, r1 -> {ADP_Stopped_ApplicationExit, code} */
    volatile uint32_t block[2] = {0x20026u, (uint32_t)code};
    register uint32_t r0 __asm__("r0") = 0x20u;
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;)
        ;
}
