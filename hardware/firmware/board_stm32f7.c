/* 32F746GDISCOVERY (STM32F746NG, Cortex-M7): 216 MHz from HSI through the PLL with over-drive,
 * USART1 on PA9/PB7 (the ST-LINK virtual COM port), I- and D-cache on, DWT cycle counter. */
#define USART_V2
#include "stm32_common.h"

#define RCC 0x40023800u
#define RCC_CR REG32(RCC + 0x00u)
#define RCC_PLLCFGR REG32(RCC + 0x04u)
#define RCC_CFGR REG32(RCC + 0x08u)
#define RCC_AHB1ENR REG32(RCC + 0x30u)
#define RCC_APB1ENR REG32(RCC + 0x40u)
#define RCC_APB2ENR REG32(RCC + 0x44u)
#define PWR_CR1 REG32(0x40007000u)
#define PWR_CSR1 REG32(0x40007004u)
#define FLASH_ACR REG32(0x40023C00u)
#define GPIOA 0x40020000u
#define GPIOB 0x40020400u
#define SCB_CCR REG32(0xE000ED14u)
#define SCB_CCSIDR REG32(0xE000ED80u)
#define SCB_CSSELR REG32(0xE000ED84u)
#define SCB_ICIALLU REG32(0xE000EF50u)
#define SCB_DCISW REG32(0xE000EF60u)

static void caches_on(void)
{
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    SCB_ICIALLU = 0;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    SCB_CCR |= 1u << 17; /* IC */
    SCB_CSSELR = 0;      /* level 1 data cache */
    __asm__ volatile("dsb" ::: "memory");
    uint32_t ccsidr = SCB_CCSIDR;
    for (uint32_t set = (ccsidr >> 13) & 0x7FFFu;; set--) {
        for (uint32_t way = (ccsidr >> 3) & 0x3FFu;; way--) {
            SCB_DCISW = set << 5 | way << 30; /* 32-byte lines, 4 ways */
            if (!way)
                break;
        }
        if (!set)
            break;
    }
    __asm__ volatile("dsb" ::: "memory");
    SCB_CCR |= 1u << 16; /* DC */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
}

static void clock_216mhz(void)
{
    RCC_APB1ENR |= 1u << 28;                /* PWREN */
    (void)RCC_APB1ENR;
    PWR_CR1 |= 3u << 14;                    /* VOS scale 1 */
    /* PLL: HSI 16 MHz / M=8 * N=216 = 432 MHz VCO, / P=2 = 216 MHz, / Q=9 = 48 MHz */
    RCC_PLLCFGR = 8u << 0 | 216u << 6 | 0u << 16 | 0u << 22 | 9u << 24;
    RCC_CR |= 1u << 24;                     /* PLLON */
    while (!(RCC_CR & 1u << 25))
        ;
    PWR_CR1 |= 1u << 16;                    /* ODEN: over-drive, needed above 180 MHz */
    while (!(PWR_CSR1 & 1u << 16))
        ;
    PWR_CR1 |= 1u << 17;                    /* ODSWEN */
    while (!(PWR_CSR1 & 1u << 17))
        ;
    FLASH_ACR = 7u | 1u << 8 | 1u << 9;     /* 7 WS at 216 MHz, prefetch, ART */
    while ((FLASH_ACR & 0xFu) != 7u)
        ;
    RCC_CFGR = (RCC_CFGR & ~(0xFu << 4 | 7u << 10 | 7u << 13)) | 5u << 10 | 4u << 13; /* APB1 /4, APB2 /2 */
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u;       /* SW = PLL */
    while (((RCC_CFGR >> 2) & 3u) != 2u)
        ;
}

void board_init(void)
{
    clock_216mhz();
    caches_on();
    RCC_AHB1ENR |= 1u << 0 | 1u << 1;       /* GPIOA, GPIOB */
    RCC_APB2ENR |= 1u << 4;                 /* USART1 */
    (void)RCC_APB2ENR;
    gpio_af(GPIOA, 9, 7);                   /* USART1_TX */
    gpio_af(GPIOB, 7, 7);                   /* USART1_RX */
    usart_start((108000000u + BOARD_BAUD / 2) / BOARD_BAUD); /* APB2 = 108 MHz, 16x oversampling */
    dwt_init();
}
