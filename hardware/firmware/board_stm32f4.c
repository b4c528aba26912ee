/* NUCLEO-F446RE (STM32F446RE, Cortex-M4F): 180 MHz from HSI through the PLL with over-drive,
 * USART2 on PA2/PA3 (the ST-LINK virtual COM port), DWT cycle counter. The F4 USART has the
 * older SR/DR register layout. */
#include "stm32_common.h"

#define RCC 0x40023800u
#define RCC_CR REG32(RCC + 0x00u)
#define RCC_PLLCFGR REG32(RCC + 0x04u)
#define RCC_CFGR REG32(RCC + 0x08u)
#define RCC_AHB1ENR REG32(RCC + 0x30u)
#define RCC_APB1ENR REG32(RCC + 0x40u)
#define PWR_CR REG32(0x40007000u)
#define PWR_CSR REG32(0x40007004u)
#define FLASH_ACR REG32(0x40023C00u)
#define GPIOA 0x40020000u
#define U_SR REG32(BOARD_UART_BASE + 0x00u)
#define U_DR REG32(BOARD_UART_BASE + 0x04u)
#define U_BRR REG32(BOARD_UART_BASE + 0x08u)
#define U_CR1 REG32(BOARD_UART_BASE + 0x0Cu)

static void clock_180mhz(void)
{
    RCC_APB1ENR |= 1u << 28;                /* PWREN */
    (void)RCC_APB1ENR;
    PWR_CR |= 3u << 14;                     /* VOS scale 1 */
    /* PLL: HSI 16 MHz / M=8 * N=180 = 360 MHz VCO, / P=2 = 180 MHz (Q=8, R=2 unused) */
    RCC_PLLCFGR = 8u << 0 | 180u << 6 | 0u << 16 | 0u << 22 | 8u << 24 | 2u << 28;
    RCC_CR |= 1u << 24;                     /* PLLON */
    while (!(RCC_CR & 1u << 25))
        ;
    PWR_CR |= 1u << 16;                     /* ODEN: over-drive, needed above 168 MHz */
    while (!(PWR_CSR & 1u << 16))
        ;
    PWR_CR |= 1u << 17;                     /* ODSWEN */
    while (!(PWR_CSR & 1u << 17))
        ;
    FLASH_ACR = 5u | 1u << 8 | 1u << 9 | 1u << 10; /* 5 WS at 180 MHz, prefetch, I/D cache */
    while ((FLASH_ACR & 0xFu) != 5u)
        ;
    RCC_CFGR = (RCC_CFGR & ~(0xFu << 4 | 7u << 10 | 7u << 13)) | 5u << 10 | 4u << 13; /* APB1 /4, APB2 /2 */
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u;       /* SW = PLL */
    while (((RCC_CFGR >> 2) & 3u) != 2u)
        ;
}

void board_init(void)
{
    clock_180mhz();
    RCC_AHB1ENR |= 1u << 0;                 /* GPIOA */
    RCC_APB1ENR |= 1u << 17;                /* USART2 */
    (void)RCC_APB1ENR;
    gpio_af(GPIOA, 2, 7);                   /* USART2_TX */
    gpio_af(GPIOA, 3, 7);                   /* USART2_RX */
    U_CR1 = 0;
    U_BRR = (45000000u + BOARD_BAUD / 2) / BOARD_BAUD; /* APB1 = 45 MHz, 16x oversampling */
    U_CR1 = 1u << 13 | 1u << 5 | 1u << 3 | 1u << 2;  /* UE, RXNEIE, TE, RE */
    NVIC_ISER(BOARD_UART_IRQ / 32) = 1u << (BOARD_UART_IRQ % 32);
    dwt_init();
}

void board_putc(uint8_t c)
{
    while (!(U_SR & 1u << 7)) /* TXE */
        ;
    U_DR = c;
}

void board_flush(void)
{
    while (!(U_SR & 1u << 6)) /* TC */
        ;
}

void board_uart_irq(void)
{
    /* reading SR then DR clears RXNE and an overrun (ORE) alike */
    while (U_SR & (1u << 5 | 1u << 3)) {
        uint32_t sr = U_SR;
        uint8_t c = (uint8_t)U_DR;
        if (sr & 1u << 5)
            fw_rx_byte(c);
    }
}
