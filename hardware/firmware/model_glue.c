/* The only firmware file compiled with the generated model: it turns the model's size macros
 * into symbols for main.c and sizes the buffers that depend on the model. */
#include "fw.h"
#include "kws_model.h"

const uint32_t fw_input_bytes = KWS_INPUT_BYTES;
const uint32_t fw_output_bytes = KWS_OUTPUT_BYTES;
const uint32_t fw_arena_bytes = KWS_ARENA_BYTES;
const uint32_t fw_num_ops = KWS_NUM_OPS;
uint8_t fw_input_stash[KWS_INPUT_BYTES > 0 ? KWS_INPUT_BYTES : 1] __attribute__((aligned(4)));
uint64_t fw_op_raw[KWS_NUM_OPS > 0 ? KWS_NUM_OPS : 1];

/* The model's activation arena, for READ_ARENA (the device check reads intermediate tensors). */
const int8_t *fw_arena_base(void) { return kws_input() - KWS_INPUT_OFFSET; }
