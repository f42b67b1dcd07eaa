/*
 * reconcile.h - drift reconciliation: the check behind "zero standing
 * privilege". Every reconcile_interval a thread of its own (with its own
 * LDAP connection per directory and its own store handle, so it never
 * holds up grants or expiries) reads each managed group's members and
 * compares them with what explains them:
 *
 *   - the group's live grants (pending, active, ending),
 *   - its standing_members (configured: allowed there permanently),
 *   - its placeholder_member.
 *
 * Each member nothing explains is an audit event `drift` (kind
 * "unexplained"), once per appearance: it is not repeated every cycle while
 * the member stays, and is written again if the member goes and comes back
 * (and once more after a restart of jitd). With the group's
 * reconcile = "enforce" the member is also removed (action "removed"). An
 * active grant whose membership someone else removed early is a `drift`
 * event of kind "missing" (jitd does not put it back). reconcile = "off"
 * leaves the group alone.
 *
 * A candidate is checked again under the pair lock of (directory, group,
 * value) before anything is written or removed: a grant created or ended
 * between the two reads is never mistaken for drift.
 *
 * Usage (engine.c): reconcile_start() once the directories' health objects
 * exist; reconcile_set_config() after each reload (main thread);
 * reconcile_stop() before the engine goes.
 */
#ifndef JITD_RECONCILE_H
#define JITD_RECONCILE_H

#include <pthread.h>
#include "audit.h"
#include "config.h"
#include "directory.h"

struct reconciler;

/*
 * Starts the thread. cfg is the start-up configuration: its directories
 * and state_dir are used for the life of the reconciler (it must outlive
 * it); its groups are the first plan. health[i] and pair_locks[i] (the
 * engine's GRANT_PAIR_LOCKS stripes of that directory) belong to cfg->dirs[i].
 */
int reconcile_start(const struct jit_config *cfg, struct audit *audit,
		    pthread_mutex_t *const *pair_locks, struct dir_health *const *health,
		    struct reconciler **out) JIT_WUR;

/* Takes the groups, modes, standing members and interval of cfg (copied:
 * cfg may be freed afterwards). Main thread. */
void reconcile_set_config(struct reconciler *r, const struct jit_config *cfg);

/* Stops the thread (interrupting a cycle between two groups or members),
 * joins it and frees r. NULL-safe. */
void reconcile_stop(struct reconciler *r);

#endif
