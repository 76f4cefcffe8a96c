/* conn_input: decodes fuzz_conn's input (the language is described in conn_input.h). */
#include "conn_input.h"

#include "conn_harness.h"

const unsigned fc_advance_ms[8] = {0, 50, 120, 250, 350, 550, 1100, 6000};

bool fc_input_decode(const uint8_t *data, size_t size, fc_input_t *in)
{
    size_t hdr, i;

    if (size < 3 || size > FZ_MAX_INPUT)
        return false;
    in->mode = data[0];
    in->answer_kind = in->mode & 7;
    in->split = (in->mode & 8) != 0;
    in->end = (in->mode >> 4) & 3;
    in->run_out = (in->mode & 64) != 0;
    in->big = (in->mode & 128) != 0;
    in->npieces = data[1] & 15;
    in->up_conn = (data[1] >> 4) & 3;
    in->up_second = (data[1] & 64) != 0;
    in->tcp = (data[1] & 128) != 0;
    in->drain = false;
    hdr = 3 + 2 * in->npieces;
    if (size < hdr)
        return false;
    for (i = 0; i < in->npieces; i++) {
        in->piece_len[i] = data[3 + 2 * i] ? data[3 + 2 * i] : 256;
        in->piece_ctl[i] = data[4 + 2 * i];
        in->drain |= (in->piece_ctl[i] & FC_DRAIN) != 0;
    }
    if (in->answer_kind != UP_RAW && (data[2] & 128))
        in->up_conn = FC_UP_BLACKHOLE;
    in->raw_len = in->answer_kind == UP_RAW ? data[2] : 0;
    if (in->raw_len > size - hdr)
        in->raw_len = size - hdr;
    in->raw = data + size - in->raw_len;
    in->big_req =
        in->big && in->answer_kind != UP_RAW ? (size_t)(data[2] & 63) * FC_BIG_REQ_UNIT : 0;
    in->cin = data + hdr;
    in->cn = size - hdr - in->raw_len;
    return true;
}
