/* Shared by the STM32 platform files: GPIO alternate functions, the DWT cycle counter (extended
 * to 64 bits in software), and reset. Register offsets are those of the STM32 reference manuals
 * (RM0432 for L4+, RM0385 for F7, RM0390 for F446). */
#ifndef STM32_COMMON_H
#define STM32_COMMON_H
#include "fw.h"

#define DEMCR REG32(0xE000EDFCu)
#define DWT_CTRL REG32(0xE0001000u)
#define DWT_CYCCNT REG32(0xE0001004u)
#define DWT_LAR REG32(0xE0001FB0u)

const uint32_t board_counter_kind = COUNTER_CYCLES;

static void gpio_af(uint32_t gpio, uint32_t pin, uint32_t af)
{
    REG32(gpio + 0x00u) = (REG32(gpio + 0x00u) & ~(3u << 2 * pin)) | 2u << 2 * pin;  /* MODER: AF */
    REG32(gpio + 0x08u) |= 2u << 2 * pin;                                           /* OSPEEDR: high */
    REG32(gpio + 0x0Cu) = (REG32(gpio + 0x0Cu) & ~(3u << 2 * pin)) | 1u << 2 * pin; /* PUPDR: pull-up */
    uint32_t afr = gpio + (pin < 8u ? 0x20u : 0x24u), shift = 4u * (pin & 7u);
    REG32(afr) = (REG32(afr) & ~(0xFu << shift)) | af << shift;
}

static void dwt_init(void)
{
    DEMCR |= 1u << 24;      /* TRCENA: the DWT is powered */
    DWT_LAR = 0xC5ACCE55u;  /* software unlock: the Cortex-M7 ignores DWT writes without it */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;         /* CYCCNTENA */
}

static uint32_t cyc_last, cyc_high;

uint64_t board_counter(void)
{
    /* CYCCNT wraps every 2^32 cycles (20-35 s here); reads are far more frequent than that */
    uint32_t now = DWT_CYCCNT;
    if (now < cyc_last)
        cyc_high++;
    cyc_last = now;
    return (uint64_t)cyc_high << 32 | now;
}

uint64_t board_counter_units(uint64_t raw) { return raw; }

void board_counter_restart(void) {} /* the DWT raises no interrupts */

void board_systick_irq(void) {}

void board_exit(int code)
{
    (void)code; /* no host to return a code to: reset, so the board is ready for the next run */
    __asm__ volatile("dsb" ::: "memory");
    SCB_AIRCR = 0x05FA0004u; /* VECTKEY | SYSRESETREQ */
    for (;;)
        ;
}

static void busy_wait(volatile uint32_t n)
{
    while (n--)
        ;
}

/* The USART of the F7 and L4 families (and the L4 LPUART): ISR/ICR/RDR/TDR layout. */
#ifdef USART_V2
#define U_CR1 REG32(BOARD_UART_BASE + 0x00u)
#define U_BRR REG32(BOARD_UART_BASE + 0x0Cu)
#define U_ISR REG32(BOARD_UART_BASE + 0x1Cu)
#define U_ICR REG32(BOARD_UART_BASE + 0x20u)
#define U_RDR REG32(BOARD_UART_BASE + 0x24u)
#define U_TDR REG32(BOARD_UART_BASE + 0x28u)

static void usart_start(uint32_t brr)
{
    U_CR1 = 0;
    U_BRR = brr;
    U_CR1 = 1u << 5 | 1u << 3 | 1u << 2; /* RXNEIE, TE, RE */
    U_CR1 |= 1u;                         /* UE */
    NVIC_ISER(BOARD_UART_IRQ / 32) = 1u << (BOARD_UART_IRQ % 32);
}

void board_putc(uint8_t c)
{
    while (!(U_ISR & 1u << 7)) /* TXE */
        ;
    U_TDR = c;
}

void board_flush(void)
{
    while (!(U_ISR & 1u << 6)) /* TC */
        ;
}

void board_uart_irq(void)
{
    if (U_ISR & 1u << 3) /* overrun: a byte was lost; the frame's CRC will catch it */
        U_ICR = 1u << 3;
    while (U_ISR & 1u << 5) /* RXNE */
        fw_rx_byte((uint8_t)U_RDR);
}
#endif
#endif
