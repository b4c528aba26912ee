/* NUCLEO-L4R5ZI (STM32L4R5ZI, Cortex-M4F): 120 MHz from HSI16 through the PLL in range-1 boost
 * mode, LPUART1 on PG7/PG8 (the ST-LINK virtual COM port), DWT cycle counter. */
#define USART_V2
#include "stm32_common.h"

#define RCC 0x40021000u
#define RCC_CR REG32(RCC + 0x00u)
#define RCC_CFGR REG32(RCC + 0x08u)
#define RCC_PLLCFGR REG32(RCC + 0x0Cu)
#define RCC_AHB2ENR REG32(RCC + 0x4Cu)
#define RCC_APB1ENR1 REG32(RCC + 0x58u)
#define RCC_APB1ENR2 REG32(RCC + 0x5Cu)
#define RCC_CCIPR REG32(RCC + 0x88u)
#define PWR 0x40007000u
#define PWR_CR2 REG32(PWR + 0x04u)
#define PWR_CR5 REG32(PWR + 0x80u)
#define FLASH_ACR REG32(0x40022000u)
#define GPIOG 0x48001800u

static void clock_120mhz(void)
{
    RCC_APB1ENR1 |= 1u << 28;               /* PWREN */
    (void)RCC_APB1ENR1;
    PWR_CR5 &= ~(1u << 8);                  /* R1MODE = 0: range 1 boost, needed above 80 MHz */
    RCC_CR |= 1u << 8;                      /* HSION */
    while (!(RCC_CR & 1u << 10))
        ;
    FLASH_ACR = (FLASH_ACR & ~0xFu) | 5u | 1u << 8 | 1u << 9 | 1u << 10; /* 5 WS, prefetch, I/D cache */
    while ((FLASH_ACR & 0xFu) != 5u)
        ;
    /* PLL: HSI16 / M=1 * N=15 = 240 MHz VCO, / R=2 = 120 MHz */
    RCC_PLLCFGR = 2u << 0 | 0u << 4 | 15u << 8 | 1u << 24 | 0u << 25;
    RCC_CR |= 1u << 24;                     /* PLLON */
    while (!(RCC_CR & 1u << 25))
        ;
    /* the reference manual's step into boost mode: AHB / 2 while switching, 1 us, then / 1 */
    RCC_CFGR = (RCC_CFGR & ~0xF0u) | 8u << 4;
    RCC_CFGR = (RCC_CFGR & ~3u) | 3u;       /* SW = PLL */
    while (((RCC_CFGR >> 2) & 3u) != 3u)
        ;
    busy_wait(200);
    RCC_CFGR &= ~(0xFu << 4 | 7u << 8 | 7u << 11); /* AHB, APB1, APB2 / 1 */
}

void board_init(void)
{
    clock_120mhz();
    PWR_CR2 |= 1u << 9;                     /* IOSV: VDDIO2 valid, powers PG2..PG15 */
    RCC_AHB2ENR |= 1u << 6;                 /* GPIOGEN */
    RCC_APB1ENR2 |= 1u << 0;                /* LPUART1EN */
    RCC_CCIPR = (RCC_CCIPR & ~(3u << 10)) | 2u << 10; /* LPUART1 clocked from HSI16 */
    (void)RCC_APB1ENR2;
    gpio_af(GPIOG, 7, 8);                   /* LPUART1_TX */
    gpio_af(GPIOG, 8, 8);                   /* LPUART1_RX */
    usart_start((uint32_t)((256ull * 16000000u + BOARD_BAUD / 2) / BOARD_BAUD)); /* LPUART: 256 * f / baud */
    dwt_init();
}
