/*
 * reconcile.c - drift reconciliation (see reconcile.h): compares each
 * managed group's members with its live grants and standing members.
 * Trust: member values come from the directory (untrusted) and reach the
 * audit log only as JSON strings, the directory only through directory.h.
 * Robustness: it removes a member (enforce) only after checking again,
 * under the pair lock, that no grant holds it and that it is still there.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <ldap.h>
#include "dnkey.h"
#include "fault.h"
#include "grant.h"
#include "log.h"
#include "privsep.h"
#include "reconcile.h"
#include "store.h"
#include "util.h"

#define LIVE_MAX 100000 /* live grants of one group read per cycle */

/* A set of strings: append, then sort once, then look up. */
struct sset {
	char **v;
	size_t n, cap;
};

static void sset_add(struct sset *s, const char *k)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = xstrdup(k);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sset_sort(struct sset *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), str_cmp);
}

static bool sset_has(const struct sset *s, const char *k)
{
	return s->n > 0 && bsearch(&k, s->v, s->n, sizeof(*s->v), str_cmp) != NULL;
}

static void sset_free(struct sset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* One group as the reconciler sees it (a copy of its configuration). */
struct rc_group {
	char *name, *dn, *directory, *attr, *placeholder;
	struct sset standing;   /* value keys (dir_value_key), sorted */
	char **standing_raw;    /* the same values as configured (NULL-ended) */
	bool *standing_ph;      /* per standing_raw value: a placeholder */
	enum jit_reconcile mode;
	int dir;                /* index into cfg0->dirs */
};

struct rc_plan {
	struct rc_group *g;
	size_t n;
	int64_t interval;
	int refs;               /* under reconciler.lock */
};

/* What a group's previous cycle reported, so each drift is told once. */
struct rc_memory {
	char *group;             /* the group's pair-key prefix (grant_pair_key) */
	struct sset unexplained; /* value keys, sorted */
	struct sset missing;     /* grant ids, sorted */
	bool read_failing;
	bool primary_failing;   /* the members by primaryGroupID could not be read */
	struct sset failed;      /* value keys whose last removal failed, sorted */
	struct rc_memory *next;
};

struct reconciler {
	const struct jit_config *cfg0;
	struct audit *audit;
	pthread_mutex_t **pair_locks; /* per cfg0 directory */
	struct dir_health **health;
	struct dir_conn **conns; /* per cfg0 directory, opened on first use */
	struct store *st;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;    /* CLOCK_MONOTONIC */
	bool stop;              /* under lock */
	struct rc_plan *plan;   /* under lock */
	struct rc_memory *memory; /* reconciler thread only */
};

static bool stopping(struct reconciler *r)
{
	pthread_mutex_lock(&r->lock);
	bool s = r->stop;
	pthread_mutex_unlock(&r->lock);
	return s;
}

/* ---- the plan ---------------------------------------------------------- */

static void plan_free(struct rc_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		struct rc_group *g = &p->g[i];
		free(g->name);
		free(g->dn);
		free(g->directory);
		free(g->attr);
		free(g->placeholder);
		sset_free(&g->standing);
		for (char **v = g->standing_raw; v && *v; v++)
			free(*v);
		free(g->standing_raw);
		free(g->standing_ph);
	}
	free(p->g);
	free(p);
}

/* One value a group's members may hold for good: into g's standing set and
 * list (n values in it so far). */
static void add_standing_value(struct rc_group *g, size_t *n, const char *value, bool ph)
{
	char *key = dir_value_key(value);
	sset_add(&g->standing, key);
	free(key);
	g->standing_raw = xrealloc(g->standing_raw, (*n + 2) * sizeof(char *));
	g->standing_ph = xrealloc(g->standing_ph, (*n + 1) * sizeof(bool));
	g->standing_ph[*n] = ph;
	g->standing_raw[(*n)++] = xstrdup(value);
	g->standing_raw[*n] = NULL;
}

/*
 * g's standing members and placeholder: those of every groups entry that
 * names the same group (directory, DN, attribute), not only g's own. Two
 * entries may name one group (a short and a long policy, say); enforce on
 * one must not remove what the other keeps for good, as their live grants
 * are already read by the group, not by the entry.
 */
/*
 * Do (directory, DN, attribute) a and b name one group? By the pair key's
 * form, or as a directory compares DNs (dn_key: case over all of Unicode,
 * the values of a multi-valued RDN in any order), which the pair key does
 * not fold: two groups entries, or a reload, may spell one group's DN so.
 */
static bool same_group(const char *dir_a, const char *dn_a, const char *attr_a,
		       const char *dir_b, const char *dn_b, const char *attr_b)
{
	if (!dir_a || !dir_b || !attr_a || !attr_b || strcasecmp(dir_a, dir_b) != 0 ||
	    strcasecmp(attr_a, attr_b) != 0)
		return false;
	char *ka = grant_pair_key(dir_a, dn_a, attr_a, ""), *kb = grant_pair_key(dir_b, dn_b, attr_b, "");
	bool same = strcmp(ka, kb) == 0;
	free(ka);
	free(kb);
	if (same)
		return true;
	char *da = dn_key(dn_a), *db = dn_key(dn_b);
	same = da && db && strcmp(da, db) == 0;
	free(da);
	free(db);
	return same;
}

static bool names_g(const char *directory, const char *group_dn, const char *member_attr,
		    void *arg)
{
	const struct rc_group *g = arg;
	return same_group(g->directory, g->dn, g->attr, directory, group_dn, member_attr);
}

/*
 * Robustness: a DN-valued member that no live grant of g's pair key holds
 * may still be a live grant's: one recorded under another spelling of g's
 * DN (a second groups entry, or a reload, that spells it with other case
 * outside ASCII, or a multi-valued RDN in another order), which the pair
 * key does not fold. *n = 1 when a live grant of that member's DN (the
 * user's, compared case-blind) names g so. JIT_OK, or the store's error.
 */
static int held_by_other_spelling(struct reconciler *r, const struct rc_group *g,
				  const char *value, int64_t *n)
{
	bool hit = false;

	*n = 0;
	if (strcasecmp(g->attr, "memberUid") == 0 || !strchr(value, '='))
		return JIT_OK;
	int rc = store_user_live_groups(r->st, value, names_g, (void *)g, &hit);
	if (rc == JIT_OK && hit) {
		*n = 1;
		log_warn("drift: %s in %s is held by a live grant that spells the group's DN "
			 "otherwise (%s); spell it the same in every groups entry", value, g->dn,
			 g->name);
	}
	return rc;
}

static void add_standing(const struct jit_config *cfg, struct rc_group *g)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_groups; i++) {
		const struct jit_group_cfg *gc = &cfg->groups[i];
		if (!same_group(g->directory, g->dn, g->attr, gc->directory, gc->dn,
				config_group_member_attr(cfg, gc)))
			continue;
		for (size_t k = 0; k < gc->n_standing_members; k++)
			add_standing_value(g, &n, gc->standing_members[k], false);
		const char *ph = config_group_placeholder(cfg, gc);
		if (ph && *ph)
			add_standing_value(g, &n, ph, true);
	}
	sset_sort(&g->standing);
}

static struct rc_plan *plan_build(const struct jit_config *cfg0, const struct jit_config *cfg)
{
	struct rc_plan *p = xcalloc(1, sizeof(*p));
	p->g = xcalloc(cfg->n_groups + 1, sizeof(*p->g));
	p->interval = cfg->reconcile_interval > 0 ? cfg->reconcile_interval : 300;
	p->refs = 1;
	for (size_t i = 0; i < cfg->n_groups; i++) {
		const struct jit_group_cfg *gc = &cfg->groups[i];
		int dir = -1;
		for (size_t d = 0; d < cfg0->n_dirs; d++)
			if (strcmp(cfg0->dirs[d].name, gc->directory) == 0)
				dir = (int)d;
		if (dir < 0 || config_group_reconcile(gc) == RECONCILE_OFF)
			continue;
		struct rc_group *g = &p->g[p->n++];
		const char *ph = config_group_placeholder(cfg, gc);
		g->name = xstrdup(gc->name);
		g->dn = xstrdup(gc->dn);
		g->directory = xstrdup(gc->directory);
		g->attr = xstrdup(config_group_member_attr(cfg, gc));
		g->placeholder = ph && *ph ? xstrdup(ph) : NULL;
		g->mode = config_group_reconcile(gc);
		g->dir = dir;
		add_standing(cfg, g);
	}
	return p;
}

static void plan_unref(struct reconciler *r, struct rc_plan *p)
{
	pthread_mutex_lock(&r->lock);
	bool last = --p->refs == 0;
	pthread_mutex_unlock(&r->lock);
	if (last)
		plan_free(p);
}

static void memory_free(struct rc_memory *m)
{
	sset_free(&m->unexplained);
	sset_free(&m->missing);
	sset_free(&m->failed);
	free(m->group);
	free(m);
}

/* The key of g's memory: what it holds (its pair-key prefix) and its mode.
 * Caller frees. */
static char *memory_key(const struct rc_group *g)
{
	/* By what the group holds (directory, DN, attribute), not by name: a
	 * name a reload gave to another group does not carry it over.
	 * Robustness: per mode too. A report entry and an enforce entry
	 * naming one group would otherwise share it, and each report pass
	 * would forget the enforce pass's failed removals (audited again,
	 * with a drift_removing line, every cycle). */
	char *prefix = grant_pair_key(g->directory, g->dn, g->attr, "");
	char *key = xasprintf("%s\n%s", prefix,
			      g->mode == RECONCILE_ENFORCE ? "enforce" : "report");
	free(prefix);
	return key;
}

/*
 * Forgets what was reported about groups plan p does not check (their
 * reconcile turned off, their mode changed, the entry removed): should
 * one be checked again later, a member reported then and removed or gone
 * since, and back now, is reported again instead of passed over as told.
 */
static void memory_prune(struct reconciler *r, const struct rc_plan *p)
{
	char **keys = xcalloc(p->n + 1, sizeof(*keys));
	for (size_t i = 0; i < p->n; i++)
		keys[i] = memory_key(&p->g[i]);
	for (struct rc_memory **mp = &r->memory; *mp;) {
		bool used = false;
		for (size_t i = 0; i < p->n && !used; i++)
			used = strcmp((*mp)->group, keys[i]) == 0;
		if (used) {
			mp = &(*mp)->next;
		} else {
			struct rc_memory *m = *mp;
			*mp = m->next;
			memory_free(m);
		}
	}
	for (size_t i = 0; i < p->n; i++)
		free(keys[i]);
	free(keys);
}

static struct rc_memory *memory_for(struct reconciler *r, const char *key)
{
	for (struct rc_memory *m = r->memory; m; m = m->next)
		if (strcmp(m->group, key) == 0)
			return m;
	struct rc_memory *m = xcalloc(1, sizeof(*m));
	m->group = xstrdup(key);
	m->next = r->memory;
	r->memory = m;
	return m;
}

static struct dir_conn *conn_for(struct reconciler *r, int dir)
{
	if (!r->conns[dir]) {
		r->conns[dir] = dir_conn_new(&r->cfg0->dirs[dir]);
		dir_conn_set_health(r->conns[dir], r->health[dir], true);
	}
	return r->conns[dir];
}

/* ---- one group --------------------------------------------------------- */

/* A member as read: its value and its comparison key. */
struct member {
	char *key, *value;
	bool primary;           /* AD: by primaryGroupID, not a value of member_attr */
	bool nul;               /* a value holding a NUL byte (value: escaped) */
};
struct members {
	struct member *v;
	size_t n, cap;
	struct reconciler *r;
};

/* By key; of two with one key, the value of the attribute first (the one
 * processed: a removal can act on it). */
static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c != 0 ? c : (int)x->primary - (int)y->primary;
}

static int collect_member(const char *value, void *arg)
{
	struct members *m = arg;
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->v = xrealloc(m->v, m->cap * sizeof(*m->v));
	}
	m->v[m->n].value = xstrdup(value);
	m->v[m->n].key = dir_value_key(value);
	m->v[m->n].primary = false;
	m->v[m->n].nul = false;
	m->n++;
	return (m->n % 1024 == 0 && stopping(m->r)) ? 1 : 0;
}

/* collect_member() for a value holding a NUL byte (escaped): the name
 * service reads the name before the NUL, so it makes that user a member;
 * no grant's value holds one, and no modify jitd makes can name it. */
static int collect_nul(const char *value, void *arg)
{
	struct members *m = arg;
	int rc = collect_member(value, arg);
	struct member *x = &m->v[m->n - 1];
	x->nul = true;
	/* a key of its own: the escaped text may also be a value's own (a
	 * memberUid "a\\00b"), but no value holds byte 0xff (IA5String is
	 * 7-bit, a DN's key UTF-8) */
	char *k = xasprintf("\xff%s", x->key);
	free(x->key);
	x->key = k;
	return rc;
}

/* collect_member() for a member by primaryGroupID (AD). */
static int collect_primary(const char *value, void *arg)
{
	struct members *m = arg;
	int rc = collect_member(value, arg);
	m->v[m->n - 1].primary = true;
	return rc;
}

static void members_free(struct members *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].key);
		free(m->v[i].value);
	}
	free(m->v);
}

/* The group's live grants, as the store holds them after the read. */
struct live {
	struct grant_rec **v;
	size_t n, cap;
};

static int collect_live(const struct grant_rec *rec, void *arg)
{
	struct live *l = arg;
	struct grant_rec *copy = NULL;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	/* The callback's record is freed after it returns: keep our own copy
	 * (only the fields the checks below need). */
	copy = xcalloc(1, sizeof(*copy));
	copy->id = xstrdup(rec->id);
	copy->state = rec->state;
	copy->member_value = xstrdup(rec->member_value);
	copy->pair_key = xstrdup(rec->pair_key);
	copy->user_uuid = xstrdup(rec->user_uuid); /* renamed_grantee */
	l->v[l->n++] = copy;
	return 0;
}

static void live_free(struct live *l)
{
	for (size_t i = 0; i < l->n; i++)
		grant_rec_free(l->v[i]);
	free(l->v);
}

static const char *mode_name(enum jit_reconcile m)
{
	return m == RECONCILE_ENFORCE ? "enforce" : m == RECONCILE_REPORT ? "report" : "off";
}

/* Writes a drift line; false (logged) if it could not be written. */
static bool audit_drift(struct reconciler *r, json_t *o)
{
	bool ok = !FAULT_FAIL("fail.drift_audit") && audit_write(r->audit, "drift", o) == JIT_OK;
	if (!ok)
		log_err("audit: cannot record a drift event; it is reported again next cycle");
	json_decref(o);
	return ok;
}

/* The fields of an unexplained member's drift lines (new reference). */
static json_t *unexplained_fields(const struct rc_group *g, const struct member *m)
{
	json_t *o = json_object();
	json_object_set_new(o, "kind", audit_text("unexplained"));
	json_object_set_new(o, "directory", audit_text(g->directory));
	json_object_set_new(o, "group", audit_text(g->name));
	json_object_set_new(o, "group_dn", audit_text(g->dn));
	json_object_set_new(o, "member_attr", audit_text(g->attr));
	json_object_set_new(o, "member", audit_text(m->value));
	json_object_set_new(o, "mode", audit_text(mode_name(g->mode)));
	return o;
}

/* The `drift_removing` line written before an enforced removal; false
 * (logged) if it could not be written: then nothing is removed. */
static bool removing_written(struct reconciler *r, const struct rc_group *g,
			     const struct member *m)
{
	json_t *o = unexplained_fields(g, m);
	bool ok = !FAULT_FAIL("fail.drift_removing_audit") &&
		  audit_write(r->audit, "drift_removing", o) == JIT_OK;
	if (!ok)
		log_err("reconcile %s: cannot record the removal of unexplained member %s; "
			"not removed, tried again next cycle", g->name, m->value);
	json_decref(o);
	return ok;
}

/* What renamed_grantee() found. */
enum grantee { GRANTEE_NO, GRANTEE_HELD, GRANTEE_UNSURE, GRANTEE_NO_ANSWER };

/*
 * Whether member m's entry has the uuid of a live grant of the group (lv):
 * that grant's user, renamed or moved since, whose value refint rewrote.
 * It is explained by the grant (whose end removes it by uuid), not drift:
 * with `enforce` it would otherwise be removed while the grant lasts. The
 * ids of such grants go to *renamed: their own value is missing for the
 * same reason, which is no drift either. GRANTEE_NO_ANSWER: the directory
 * did not answer (look again next cycle). GRANTEE_UNSURE: it gave no
 * readable uuid (a refusal, no entry jitd may see) at a DN that a move of a
 * grantee would make (its RDN under another parent: the grantee may have
 * moved where the service account may not read). A rename in place stays
 * where jitd could read it before.
 */
static enum grantee renamed_grantee(struct dir_conn *dc, const struct member *m,
				    const struct live *lv, struct sset *renamed)
{
	bool any = false, held = false;
	char *uuid = NULL;

	for (size_t i = 0; i < lv->n && !any; i++)
		any = lv->v[i]->user_uuid != NULL;
	if (!any)
		return GRANTEE_NO;
	struct dir_result res = { 0 };
	int rc = dir_entry_uuid(dc, m->value, &uuid, &res);
	/* no answer (busy and unavailable included: dir_run maps them so), or
	 * one that says "not now" (time or admin limit, unwilling, other):
	 * look again next cycle */
	if (rc == JIT_EDIRUNAVAIL ||
	    (rc != JIT_OK && (res.ldap_code == LDAP_TIMELIMIT_EXCEEDED ||
			      res.ldap_code == LDAP_ADMINLIMIT_EXCEEDED ||
			      res.ldap_code == LDAP_UNWILLING_TO_PERFORM || res.ldap_code == LDAP_OTHER)))
		return GRANTEE_NO_ANSWER;
	if (rc != JIT_OK || uuid == NULL) {
		for (size_t i = 0; i < lv->n; i++)
			if (lv->v[i]->user_uuid && dir_dn_moved(m->value, lv->v[i]->member_value))
				return GRANTEE_UNSURE;
		return GRANTEE_NO;
	}
	for (size_t i = 0; i < lv->n; i++) {
		if (lv->v[i]->user_uuid && strcasecmp(lv->v[i]->user_uuid, uuid) == 0) {
			sset_add(renamed, lv->v[i]->id);
			held = true;
		}
	}
	free(uuid);
	return held ? GRANTEE_HELD : GRANTEE_NO;
}

/*
 * Is a standing member (or the placeholder) in the group under a spelling
 * whose key none of the values read has (present: their keys)? The server
 * matches DNs by its own rules (spaces, Unicode forms, attribute type
 * aliases), jitd's key may not; then one of the unexplained values may be
 * it, and enforce removes none of them. So too when a standing member's DN
 * names no entry: it was renamed or moved (an account moved to another OU,
 * and the directory rewrote its membership to the new DN), and one of the
 * unexplained values may be it; the operator updates standing_members. A
 * check that fails counts as yes. Yes: why (for the drift event's message)
 * into why.
 */
static bool standing_spelled_otherwise(const struct rc_group *g, struct dir_conn *dc,
				       const struct sset *present, char *why, size_t whylen)
{
	for (size_t i = 0; g->standing_raw && g->standing_raw[i]; i++) {
		const char *v = g->standing_raw[i];
		char *key = dir_value_key(v);
		bool listed = sset_has(present, key);
		bool there = false, exists = true;
		free(key);
		if (listed)
			continue;
		if (dir_is_member(dc, g->dn, g->attr, v, &there, NULL) != JIT_OK) {
			snprintf(why, whylen, "not removed: jitd could not check whether standing "
				 "member \"%.200s\" is in the group under another spelling", v);
			return true;
		}
		if (there) {
			snprintf(why, whylen, "not removed: standing member \"%.200s\" is in the "
				 "group under another spelling, which may be this value", v);
			return true;
		}
		if (g->standing_ph[i] || strcasecmp(g->attr, "memberUid") == 0)
			continue; /* a placeholder may name no entry; a uid is no DN */
		if (dir_entry_exists(dc, v, &exists, NULL) != JIT_OK) {
			snprintf(why, whylen, "not removed: jitd could not check whether standing "
				 "member \"%.200s\" still names an entry", v);
			return true;
		}
		if (!exists) {
			snprintf(why, whylen, "not removed: standing member \"%.200s\" names no entry "
				 "jitd can see (renamed or moved? then it may be this value): put its "
				 "DN as it is now in standing_members", v);
			return true;
		}
	}
	return false;
}

/*
 * A member nothing explained. Checked again under its pair lock; reported
 * if new (prev is the last cycle's set), removed if the group enforces.
 * Adds its key to next unless it is gone or a live grant's renamed user.
 */
static bool plan_current(struct reconciler *r, const struct rc_plan *p);

/* *replaced: a reload replaced plan p before m's removal (nothing done). */
static void unexplained(struct reconciler *r, const struct rc_plan *p, const struct rc_group *g,
			struct dir_conn *dc, const struct member *m, const struct live *lv,
			struct sset *renamed, const struct sset *prev,
			const struct sset *prev_failed, struct sset *next,
			struct sset *next_failed, const char *standing_hold, bool *replaced)
{
	struct dir_result dres = { 0 };
	const char *action = "reported", *note = NULL;
	bool seen = sset_has(prev, m->key), present = false, gone = false, wrote_removing = false;
	int64_t n = 0;
	bool any_jitd = false;

	if (seen && g->mode != RECONCILE_ENFORCE) {
		sset_add(next, m->key);
		return;
	}
	enum grantee who = renamed_grantee(dc, m, lv, renamed);
	if (who == GRANTEE_HELD)
		return;
	if (who == GRANTEE_NO_ANSWER) {
		if (seen) /* cannot tell: keep what we knew, look again next cycle */
			sset_add(next, m->key);
		return;
	}
	if ((who == GRANTEE_UNSURE || standing_hold || m->primary || m->nul) && seen) {
		sset_add(next, m->key); /* reported already, and never removed */
		return;
	}
	char *pk = grant_pair_key(g->directory, g->dn, g->attr, m->value);
	pthread_mutex_t *lock = grant_pair_lock(r->pair_locks[g->dir], pk);
	pthread_mutex_lock(lock);
	/* A member by primaryGroupID, or a value with a NUL, was read just
	 * now: no value to search. */
	bool no_value = m->primary || m->nul;
	present = no_value;
	/* memberUid compares case: only a grant of this very value holds it */
	bool exact = strcasecmp(g->attr, "memberUid") == 0;
	bool known = (exact ? store_pair_live_same(r->st, pk, NULL, GS_LIVE_MASK, NULL, m->value,
						   &n, &any_jitd)
			    : store_pair_live(r->st, pk, NULL, GS_LIVE_MASK, &n, &any_jitd)) == JIT_OK &&
		     (n > 0 || no_value || held_by_other_spelling(r, g, m->value, &n) == JIT_OK) &&
		     (n > 0 || no_value ||
		      dir_is_member(dc, g->dn, g->attr, m->value, &present, &dres) == JIT_OK);
	if (!known || n > 0 || !present) {
		/* A grant holds it now or it is gone: no drift. Cannot tell: keep
		 * what we knew, look again next cycle. */
		pthread_mutex_unlock(lock);
		if (!known && seen)
			sset_add(next, m->key);
		free(pk);
		return;
	}
	if (m->primary) {
		/* Not a value of the attribute: no modify of the group removes
		 * it, and jitd does not change a user's primary group. */
		note = "member by primaryGroupID (the group is the user's primary group): jitd "
		       "cannot remove it; set the user's primary group back";
	} else if (m->nul) {
		note = "a value holding a NUL byte (written \\00): the name service takes the "
		       "name before it for a member; jitd cannot remove it: remove it by hand";
	} else if (g->mode == RECONCILE_ENFORCE && standing_hold) {
		/* Robustness: it may be that standing member, spelled otherwise. */
		note = standing_hold;
	} else if (g->mode == RECONCILE_ENFORCE && who == GRANTEE_UNSURE) {
		/* Robustness: it may be a live grantee that jitd cannot read;
		 * removing it would end that grant early. Reported, not removed. */
		note = "not removed: jitd cannot read this entry's uuid, and it may be a live "
		       "grant's user, moved";
	} else if (g->mode == RECONCILE_ENFORCE && !plan_current(r, p)) {
		/* Robustness: a reload came during the look-ups above (each up
		 * to the directory's timeout); the new plan decides. */
		*replaced = true;
		pthread_mutex_unlock(lock);
		free(pk);
		return;
	} else if (g->mode == RECONCILE_ENFORCE) {
		/* Evidence first, as for grants: the drift line comes after the
		 * removal, and one that cannot be written then leaves a removal
		 * nobody can see (the member is gone, so the next cycle has
		 * nothing to report). Only a member whose last removal failed
		 * goes without: its line and remove_failed line stand (one
		 * reported under report mode, or left with a message, has
		 * none). */
		if (!sset_has(prev_failed, m->key)) {
			if (!removing_written(r, g, m)) {
				pthread_mutex_unlock(lock);
				free(pk);
				return; /* not in next: tried again next cycle */
			}
			wrote_removing = true;
		}
		int rc = dir_remove_member(dc, g->dn, g->attr, m->value, g->placeholder, &gone,
					   &dres);
		action = rc == JIT_OK ? "removed" : "remove_failed";
		if (rc == JIT_OK && gone) {
			/* Robustness: "no such value" is no proof of a removal
			 * (another server that has not seen the value yet, a
			 * value the server computes): looked at once more */
			bool still = true;
			struct dir_result cres = { 0 };
			int crc = dir_is_member(dc, g->dn, g->attr, m->value, &still, &cres);
			if (crc == JIT_OK && !still) {
				action = "already_absent";
			} else {
				action = "remove_failed";
				rc = JIT_EDIRREFUSED;
				snprintf(dres.message, sizeof(dres.message), "%s",
					 crc == JIT_OK ? "the directory answered no such value, yet "
							 "the value is still there"
						       : "the directory answered no such value, and "
							 "it cannot be checked again");
			}
		}
		if (rc != JIT_OK)
			sset_add(next_failed, m->key); /* its line is written once */
	}
	pthread_mutex_unlock(lock);
	free(pk);
	/* A new one is remembered as reported only once its line is written
	 * (below), so that a line that could not be written is reported again. */
	/* A drift_removing line written now is always followed by its result,
	 * even for a member reported before. */
	if (seen && strcmp(action, "removed") != 0 && !wrote_removing) {
		sset_add(next, m->key);
		log_warn("reconcile %s: cannot remove unexplained member %s: %s", g->name, m->value,
			 dres.message);
		return;
	}
	log_warn("reconcile %s: member %s is explained by no grant (%s)", g->name, m->value,
		 action);
	json_t *o = unexplained_fields(g, m);
	json_object_set_new(o, "action", audit_text(action));
	if (m->primary)
		json_object_set_new(o, "via", audit_text("primaryGroupID"));
	if (note) {
		json_object_set_new(o, "message", audit_text(note));
	} else if (dres.message[0]) {
		json_object_set_new(o, "ldap_code", json_integer(dres.ldap_code));
		json_object_set_new(o, "message", audit_text(dres.message));
	}
	if (audit_drift(r, o) && strcmp(action, "removed") != 0 &&
	    strcmp(action, "already_absent") != 0)
		sset_add(next, m->key);
}

/* An active grant whose member is not in the group: someone removed it. */
static void missing(struct reconciler *r, const struct rc_group *g, struct dir_conn *dc,
		    const struct grant_rec *lr, const struct sset *prev, struct sset *next)
{
	struct dir_result dres = { 0 };
	struct grant_rec *rec = NULL;
	bool present = true;

	if (sset_has(prev, lr->id)) {
		sset_add(next, lr->id);
		return;
	}
	pthread_mutex_t *lock = grant_pair_lock(r->pair_locks[g->dir], lr->pair_key);
	pthread_mutex_lock(lock);
	if (store_get(r->st, lr->id, &rec) != JIT_OK || rec->state != GS_ACTIVE ||
	    dir_is_member(dc, rec->group_dn, rec->member_attr, rec->member_value, &present,
			  &dres) != JIT_OK ||
	    present) {
		pthread_mutex_unlock(lock);
		grant_rec_free(rec);
		return;
	}
	pthread_mutex_unlock(lock);
	log_warn("reconcile %s: grant %s is active but %s is not a member: removed by someone "
		 "else", g->name, rec->id, rec->member_value);
	json_t *o = grant_audit_fields(rec);
	json_object_set_new(o, "kind", audit_text("missing"));
	json_object_set_new(o, "member_attr", audit_text(rec->member_attr));
	json_object_set_new(o, "member", audit_text(rec->member_value));
	json_object_set_new(o, "mode", audit_text(mode_name(g->mode)));
	json_object_set_new(o, "action", audit_text("reported"));
	grant_rec_free(rec);
	if (audit_drift(r, o)) /* else reported again next cycle */
		sset_add(next, lr->id);
}

/* Reads the group's members; false (logged once per failure spell) if not. */
static bool read_members(struct reconciler *r, const struct rc_group *g, struct rc_memory *mem,
			 struct members *ms)
{
	struct dir_result dres = { 0 };
	int rc = dir_list_members_odd(conn_for(r, g->dir), g->dn, g->attr, collect_member,
				      collect_nul, ms, &dres);
	if (rc != JIT_OK) {
		if (!mem->read_failing)
			log_warn("reconcile %s: cannot read the members of %s: %s", g->name, g->dn,
				 dres.message[0] ? dres.message : jit_err_message(rc));
		mem->read_failing = true;
		return false;
	}
	if (mem->read_failing)
		log_info("reconcile %s: members readable again", g->name);
	mem->read_failing = false;
	/* Active Directory: the users whose primary group it is are members
	 * that `member` never lists (one more read of the group, and a search
	 * of the domain when it has a primaryGroupToken). If they cannot be
	 * read, the group's `member` values are still checked. */
	if (strcasecmp(g->attr, "member") == 0 &&
	    strcasecmp(dir_conn_uuid_attr(conn_for(r, g->dir)), "objectGUID") == 0) {
		rc = dir_list_primary_members(conn_for(r, g->dir), g->dn, collect_primary, ms,
					      &dres);
		if (rc != JIT_OK) {
			if (!mem->primary_failing)
				log_warn("reconcile %s: cannot read the members by primaryGroupID of "
					 "%s: %s", g->name, g->dn,
					 dres.message[0] ? dres.message : jit_err_message(rc));
			mem->primary_failing = true;
			return true;
		}
		mem->primary_failing = false;
	}
	return true;
}

/* One group g of plan p; false when a reload replaced p during it (its
 * enforcement stopped, the group left to the new plan). */
static bool reconcile_group(struct reconciler *r, const struct rc_plan *p, const struct rc_group *g)
{
	/* The group's grants by what they hold (directory, DN, attribute), not
	 * by name: a reload may have renamed the entry, or another entry may
	 * name the same DN. So is what was reported about it remembered
	 * (memory_key). */
	char *prefix = grant_pair_key(g->directory, g->dn, g->attr, "");
	char *mkey = memory_key(g);
	struct rc_memory *mem = memory_for(r, mkey);
	free(mkey);
	struct members ms = { .r = r };
	struct live lv = { 0 };
	struct sset explained = { 0 }, present = { 0 }, next_u = { 0 }, next_m = { 0 };
	struct sset next_f = { 0 };
	struct sset renamed = { 0 };
	struct dir_conn *dc = conn_for(r, g->dir);
	bool replaced = false;

	/* Directory first, store second: a membership jitd adds has its row
	 * committed before the add, so whatever the read saw, the store has. */
	if (!read_members(r, g, mem, &ms) || stopping(r))
		goto out;
	if (store_group_live(r->st, prefix, LIVE_MAX, collect_live, &lv) < 0) {
		log_err("reconcile %s: cannot read the group's grants", g->name);
		goto out;
	}
	for (size_t i = 0; i < g->standing.n; i++)
		sset_add(&explained, g->standing.v[i]);
	for (size_t i = 0; i < lv.n; i++) {
		char *k = dir_value_key(lv.v[i]->member_value);
		sset_add(&explained, k);
		free(k);
	}
	sset_sort(&explained);
	if (ms.n > 1) /* an empty group has no array at all */
		qsort(ms.v, ms.n, sizeof(*ms.v), member_cmp);
	for (size_t i = 0; i < ms.n; i++)
		if (i == 0 || strcmp(ms.v[i].key, ms.v[i - 1].key) != 0)
			sset_add(&present, ms.v[i].key);
	int spelled = -1; /* standing_spelled_otherwise(), asked once if needed */
	char hold[512] = "";
	for (size_t i = 0; i < ms.n && !stopping(r); i++) {
		if ((i > 0 && strcmp(ms.v[i].key, ms.v[i - 1].key) == 0) ||
		    sset_has(&explained, ms.v[i].key))
			continue;
		/* Robustness: a reload during the pass (report instead of enforce,
		 * a standing member added) decides the members not removed yet:
		 * the group is left, its memory as it was, to the new plan. */
		if (g->mode == RECONCILE_ENFORCE && !plan_current(r, p)) {
			replaced = true;
			break;
		}
		if (spelled < 0)
			spelled = g->mode == RECONCILE_ENFORCE &&
				  standing_spelled_otherwise(g, dc, &present, hold, sizeof(hold));
		unexplained(r, p, g, dc, &ms.v[i], &lv, &renamed, &mem->unexplained, &mem->failed,
			    &next_u, &next_f, spelled ? hold : NULL, &replaced);
		if (replaced)
			break;
	}
	sset_sort(&renamed);
	for (size_t i = 0; i < lv.n && !stopping(r) && !replaced; i++) {
		if (lv.v[i]->state != GS_ACTIVE)
			continue; /* pending: being added; ending: being removed */
		char *k = dir_value_key(lv.v[i]->member_value);
		if (!sset_has(&present, k) && !sset_has(&renamed, lv.v[i]->id))
			missing(r, g, dc, lv.v[i], &mem->missing, &next_m);
		free(k);
	}
	if (stopping(r) || replaced)
		goto out;
	sset_sort(&next_u);
	sset_sort(&next_m);
	sset_sort(&next_f);
	sset_free(&mem->failed);
	mem->failed = next_f;
	memset(&next_f, 0, sizeof(next_f));
	sset_free(&mem->unexplained);
	sset_free(&mem->missing);
	mem->unexplained = next_u;
	mem->missing = next_m;
	memset(&next_u, 0, sizeof(next_u));
	memset(&next_m, 0, sizeof(next_m));
out:
	sset_free(&explained);
	sset_free(&present);
	sset_free(&renamed);
	sset_free(&next_u);
	sset_free(&next_m);
	sset_free(&next_f);
	live_free(&lv);
	members_free(&ms);
	free(prefix);
	return !replaced;
}

/* ---- the thread -------------------------------------------------------- */

/* Is p still the plan (no reload replaced it)? */
static bool plan_current(struct reconciler *r, const struct rc_plan *p)
{
	pthread_mutex_lock(&r->lock);
	bool current = r->plan == p;
	pthread_mutex_unlock(&r->lock);
	return current;
}

/* One pass over p's groups; false when a reload replaced p meanwhile (the
 * groups not reached yet are left to the new plan: a group a reload set to
 * report, or gave standing members, is not enforced under the old rules). */
static bool run_cycle(struct reconciler *r, const struct rc_plan *p)
{
	int64_t t0 = mono_ms();
	size_t i = 0;
	memory_prune(r, p);
	for (; i < p->n && !stopping(r); i++) {
		if (i > 0 && !plan_current(r, p)) {
			log_debug("reconcile: a reload came during the pass; the rest under it");
			return false;
		}
		if (!reconcile_group(r, p, &p->g[i])) {
			log_debug("reconcile: a reload came during an enforced group; the rest under it");
			return false;
		}
	}
	log_debug("reconcile: %zu group(s) checked in %lld ms", p->n,
		  (long long)(mono_ms() - t0));
	return true;
}

static void *rc_main(void *arg)
{
	struct reconciler *r = arg;
	struct timespec now, until;
	privsep_thread_no_caps();
	pthread_mutex_lock(&r->lock);
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t last = now.tv_sec;
	while (!r->stop) {
		int64_t due = last + r->plan->interval;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec < due) {
			until = (struct timespec){ .tv_sec = (time_t)due, .tv_nsec = now.tv_nsec };
			int err = pthread_cond_timedwait(&r->cond, &r->lock, &until);
			if (err != 0 && err != ETIMEDOUT)
				log_err("reconcile: wait: %s", strerror(err));
			continue; /* stop, a new plan (interval), or the time has come */
		}
		last = now.tv_sec;
		struct rc_plan *p = r->plan;
		p->refs++;
		pthread_mutex_unlock(&r->lock);
		bool whole = run_cycle(r, p);
		plan_unref(r, p);
		pthread_mutex_lock(&r->lock);
		if (!whole) /* the new plan's pass, at once */
			last = (int64_t)now.tv_sec - r->plan->interval;
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int reconcile_start(const struct jit_config *cfg, struct audit *audit,
		    pthread_mutex_t *const *pair_locks, struct dir_health *const *health,
		    struct reconciler **out)
{
	struct reconciler *r = xcalloc(1, sizeof(*r));
	pthread_condattr_t ca;
	int err;

	r->cfg0 = cfg;
	r->audit = audit;
	r->pair_locks = xcalloc(cfg->n_dirs + 1, sizeof(*r->pair_locks));
	r->health = xcalloc(cfg->n_dirs + 1, sizeof(*r->health));
	for (size_t i = 0; i < cfg->n_dirs; i++) {
		r->health[i] = health[i];
		r->pair_locks[i] = pair_locks[i];
	}
	r->conns = xcalloc(cfg->n_dirs + 1, sizeof(*r->conns));
	r->plan = plan_build(cfg, cfg);
	pthread_mutex_init(&r->lock, NULL);
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&r->cond, &ca) != 0)
		fatal("reconcile: cannot create a monotonic condition variable");
	pthread_condattr_destroy(&ca);
	if (store_open(cfg->state_dir, &r->st) != JIT_OK) {
		log_err("reconcile: cannot open the store");
		reconcile_stop(r);
		return JIT_EIO;
	}
	err = pthread_create(&r->thread, NULL, rc_main, r);
	if (err != 0) {
		log_err("reconcile: cannot start the thread: %s", strerror(err));
		reconcile_stop(r);
		return JIT_EINTERNAL;
	}
	r->started = true;
	*out = r;
	return JIT_OK;
}

static bool str_same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Do plans a and b check the same groups the same way? */
static bool plan_same(const struct rc_plan *a, const struct rc_plan *b)
{
	if (a->n != b->n || a->interval != b->interval)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct rc_group *x = &a->g[i], *y = &b->g[i];
		if (!str_same(x->name, y->name) || !str_same(x->dn, y->dn) ||
		    !str_same(x->directory, y->directory) || !str_same(x->attr, y->attr) ||
		    !str_same(x->placeholder, y->placeholder) || x->mode != y->mode ||
		    x->dir != y->dir || x->standing.n != y->standing.n)
			return false;
		for (size_t k = 0; k < x->standing.n; k++)
			if (strcmp(x->standing.v[k], y->standing.v[k]) != 0)
				return false;
	}
	return true;
}

void reconcile_set_config(struct reconciler *r, const struct jit_config *cfg)
{
	struct rc_plan *p = plan_build(r->cfg0, cfg);
	pthread_mutex_lock(&r->lock);
	if (plan_same(r->plan, p)) {
		/* a reload that changed nothing here (logrotate's daily one)
		 * leaves the pass in progress alone */
		pthread_mutex_unlock(&r->lock);
		plan_free(p);
		return;
	}
	struct rc_plan *old = r->plan;
	r->plan = p;
	bool last = --old->refs == 0;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	if (last)
		plan_free(old);
}

void reconcile_stop(struct reconciler *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	if (r->started)
		pthread_join(r->thread, NULL);
	for (size_t i = 0; i < r->cfg0->n_dirs; i++)
		dir_conn_free(r->conns[i]);
	while (r->memory) {
		struct rc_memory *m = r->memory;
		r->memory = m->next;
		memory_free(m);
	}
	store_close(r->st);
	plan_free(r->plan);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r->conns);
	free(r->health);
	free(r->pair_locks);
	free(r);
}
