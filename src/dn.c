/*
 * dn.c - the directory module's pure helpers on DNs and attribute
 * descriptions (directory_int.h, directory.h): DNs parsed and compared RDN by
 * RDN (under a base, related by a rename or move), member value and pair keys,
 * AD range descriptions. No I/O (test_directory covers the keys and ranges).
 * Trust boundary: every input may come from the server or the config; DNs are
 * parsed by libldap only, and anything that does not parse is not a DN.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldap.h>

#include "directory_int.h"
#include "dnkey.h"
#include "util.h"

/* Parses s as a DN; *n = its number of RDNs. False (and *dn NULL) if it
 * is not one. */
bool dn_parse(const char *s, LDAPDN *dn, int *n)
{
	*dn = NULL;
	*n = 0;
	if (s == NULL || strchr(s, '=') == NULL ||
	    ldap_str2dn(s, dn, LDAP_DN_FORMAT_LDAP) != LDAP_SUCCESS || *dn == NULL) {
		ldap_dnfree(*dn);
		*dn = NULL;
		return false;
	}
	while ((*dn)[*n] != NULL)
		(*n)++;
	return true;
}

/* k RDNs of a from ia against k of b from ib, case-insensitively. */
static bool rdns_equal(LDAPDN a, int ia, LDAPDN b, int ib, int k)
{
	bool eq = true;

	for (int i = 0; eq && i < k; i++) {
		char *x = NULL, *y = NULL;
		eq = ldap_rdn2str(a[ia + i], &x, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS &&
		     ldap_rdn2str(b[ib + i], &y, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS &&
		     x != NULL && y != NULL && strcasecmp(x, y) == 0;
		ldap_memfree(x);
		ldap_memfree(y);
	}
	return eq;
}

/* Parses DNs a and b and applies test to their RDNs (na, nb: how many);
 * false if either does not parse or holds no RDN. */
static bool dn_test(const char *a, const char *b, bool (*test)(LDAPDN, int, LDAPDN, int))
{
	LDAPDN x = NULL, y = NULL;
	int nx = 0, ny = 0;
	bool r = dn_parse(a, &x, &nx) && dn_parse(b, &y, &ny) && nx > 0 && ny > 0 &&
		 test(x, nx, y, ny);

	ldap_dnfree(x);
	ldap_dnfree(y);
	return r;
}

static bool rdns_under(LDAPDN d, int nd, LDAPDN b, int nb)
{
	return nb <= nd && rdns_equal(d, nd - nb, b, 0, nb);
}

/* Is dn base itself or an entry below it (RDN by RDN, not by string)? */
bool dn_under(const char *dn, const char *base)
{
	return dn_test(dn, base, rdns_under);
}

static bool rdns_related(LDAPDN d, int nd, LDAPDN w, int nw)
{
	return rdns_equal(d, 0, w, 0, 1) || (nd == nw && rdns_equal(d, 1, w, 1, nw - 1));
}

/* Could dn be what a rename or move made of was (both DNs)? True when it
 * keeps was's first RDN (moved) or its parent (renamed in place). */
bool dn_related(const char *dn, const char *was)
{
	return dn_test(dn, was, rdns_related);
}

static bool rdns_moved(LDAPDN d, int nd, LDAPDN w, int nw)
{
	return rdns_equal(d, 0, w, 0, 1) && (nd != nw || !rdns_equal(d, 1, w, 1, nw - 1));
}

bool dir_dn_moved(const char *dn, const char *was)
{
	return dn_test(dn, was, rdns_moved);
}

bool dir_parse_range(const char *desc, const char *attr, long *low, long *high)
{
	static const char tag[] = ";range=";
	size_t n = strlen(attr);
	const char *p;
	char *end;
	long lo, hi;

	if (strncasecmp(desc, attr, n) != 0 || strncasecmp(desc + n, tag, sizeof(tag) - 1) != 0)
		return false;
	p = desc + n + sizeof(tag) - 1;
	if (*p < '0' || *p > '9')
		return false;
	errno = 0;
	lo = strtol(p, &end, 10);
	if (errno != 0 || *end != '-')
		return false;
	p = end + 1;
	if (p[0] == '*' && p[1] == '\0') {
		hi = -1;
	} else {
		if (*p < '0' || *p > '9')
			return false;
		hi = strtol(p, &end, 10);
		/* LONG_MAX: no next range could follow it */
		if (errno != 0 || *end != '\0' || hi < lo || hi == LONG_MAX)
			return false;
	}
	*low = lo;
	*high = hi;
	return true;
}

char *dir_pair_dn_key(const char *value)
{
	LDAPDN dn = NULL;
	char *out = NULL, *key;

	if (value != NULL && strchr(value, '=') != NULL &&
	    ldap_str2dn(value, &dn, LDAP_DN_FORMAT_LDAP) == LDAP_SUCCESS && dn != NULL &&
	    ldap_dn2str(dn, &out, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS && out != NULL)
		key = xstrdup(out);
	else
		key = xstrdup(value ? value : "");
	ldap_memfree(out);
	ldap_dnfree(dn);
	for (char *p = key; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return key;
}

char *dir_value_key(const char *value)
{
	char *key = dn_key(value);
	return key ? key : xstrdup(value ? value : "");
}

char *dir_pair_key(const char *directory, const char *group_dn, const char *attr,
		   const char *value)
{
	char *dn = dir_pair_dn_key(group_dn);
	char *k = xasprintf("%s\n%s\n%s\n%s", directory ? directory : "", dn, attr ? attr : "",
			    value ? value : "");
	free(dn);
	for (char *p = k; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return k;
}
