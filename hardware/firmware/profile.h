/* Force-included (gcc -include) into the generated model sources: the per-op counter hooks.
 * They cost a load and a branch per op when profiling is off (RUN without the per-op flag). */
#ifndef FW_PROFILE_H
#define FW_PROFILE_H
extern unsigned int fw_profiling;
void fw_op_begin(int i);
void fw_op_end(int i);
#define KWS_OP_BEGIN(i) do { if (fw_profiling) fw_op_begin(i); } while (0)
#define KWS_OP_END(i) do { if (fw_profiling) fw_op_end(i); } while (0)
#endif
