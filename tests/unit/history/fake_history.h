/* fake_history.h — a test double of the history interface (history/history.h) for unit tests of
 * the publish path: it records each append and completes it only when the test says so, from
 * whichever thread calls fake_history_complete(), as a slow backend would. Completed frames are
 * all kept (no retention) and readable through cursors. It owns its references to the frames it
 * holds; pending appends still uncompleted at destroy complete with -ECANCELED. */
#ifndef FAKE_HISTORY_H
#define FAKE_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "history/history.h"

/* A fake history whose order stands at last_seq (a reopened durable store's would not be 0).
 * 0 or -ENOMEM. */
int fake_history_new(sl_history_t **h, uint64_t last_seq);

/* Completes the n oldest pending appends (fewer if fewer are pending), in append order, with err:
 * 0 stores each one with the next seq, a negative errno fails it (no seq given). Each done
 * callback runs on the calling thread with no lock held. Returns how many were completed. */
size_t fake_history_complete(sl_history_t *h, size_t n, int err);

/* A fake history with `groups`, append_held and kick (history.h): fake_history_complete then
 * sends no group end; fake_history_end_group does (the NULL call, with the arg of the last
 * completion), and destroy ends the group it completes. */
int fake_history_new_grouped(sl_history_t **h, uint64_t last_seq);
void fake_history_end_group(sl_history_t *h);

/* Kicks received (grouped fake). */
size_t fake_history_kicks(sl_history_t *h);

/* Appends recorded and not yet completed. */
size_t fake_history_pending(sl_history_t *h);

/* Makes every following append fail to start with err (done not called); 0 accepts them again. */
void fake_history_refuse(sl_history_t *h, int err);

#endif
