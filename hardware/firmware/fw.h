/* The measurement firmware's internal interface.
 *
 * main.c (the protocol server) is the same on every board; a platform file (board_cmsdk.c for the
 * QEMU mps2 machines, board_stm32*.c for real parts) provides everything below. build.py passes
 * the board's numbers as -D flags (BOARD_*), taken from hardware/boards.toml.
 */
#ifndef FW_H
#define FW_H

#include <stddef.h>
#include <stdint.h>

#define FW_VERSION 0x0102u      /* major << 8 | minor; also in hardware/firmware/build.py */
#define FW_PROTOCOL_VERSION 1u  /* hardware/wire.py PROTOCOL_VERSION */

#define REG32(addr) (*(volatile uint32_t *)(addr))

/* Cortex-M system registers common to v7-M and v8-M mainline. */
#define SCB_CPUID REG32(0xE000ED00u)
#define SCB_ICSR REG32(0xE000ED04u)
#define SCB_AIRCR REG32(0xE000ED0Cu)
#define SCB_CFSR REG32(0xE000ED28u)
#define SCB_HFSR REG32(0xE000ED2Cu)
#define SCB_CPACR REG32(0xE000ED88u)
#define NVIC_ISER(n) REG32(0xE000E100u + 4u * (n))
#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define ICSR_PENDSTSET (1u << 26)
#define ICSR_PENDSTCLR (1u << 25)

/* Counter kinds reported by board-info (hardware/wire.py CounterKind). */
#define COUNTER_CYCLES 0u
#define COUNTER_INSTRUCTIONS 1u

/* ---- provided by the platform file ---- */
void board_init(void);                 /* clocks, UART (RX interrupt on), counter */
void board_putc(uint8_t c);            /* blocking transmit */
void board_flush(void);                /* wait until the last byte has left */
void board_uart_irq(void);             /* the UART RX interrupt handler (startup.c vectors it) */
uint64_t board_counter(void);          /* monotonic count in the board's counter unit (raw) */
uint64_t board_counter_units(uint64_t raw_delta); /* raw delta -> instructions or cycles */
void board_counter_restart(void);      /* before a timed run: the counter's interrupts at fixed points */
void board_systick_irq(void);          /* SysTick handler (platforms that count wraps) */
__attribute__((noreturn)) void board_exit(int code); /* semihosting exit (QEMU) or reset */
extern const uint32_t board_counter_kind;

/* ---- provided by main.c ---- */
void fw_rx_byte(uint8_t c);            /* called from the UART interrupt */
__attribute__((noreturn)) void fw_fault(uint32_t pc, uint32_t lr); /* HardFault path */

/* ---- the generated model's C API (kws_model.h; the firmware always uses the kws_ prefix) ---- */
int8_t *kws_input(void);
const int8_t *kws_output(void);
void kws_run(void);
extern const char kws_model_digest[];

/* ---- provided by model_glue.c, compiled with the model: its sizes, so that every other
 * firmware object is independent of the model and compiled once per board ---- */
extern const uint32_t fw_input_bytes, fw_output_bytes, fw_arena_bytes, fw_num_ops;
extern uint8_t fw_input_stash[];   /* the staged input, copied into the model before every run */
extern uint64_t fw_op_raw[];       /* per-op counts of the last profiled run (raw counter units) */
const int8_t *fw_arena_base(void); /* the model's activation arena (fw_arena_bytes long) */

/* ---- provided by startup.c ---- */
extern uint32_t __stack_bottom, __stack_top; /* the painted stack region (linker script) */
#define STACK_PAINT 0xA5C3A5C3u
uint32_t fw_stack_peak_bytes(void);

/* memcpy and friends: the firmware links without a C library (runtime.c). */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

#endif
