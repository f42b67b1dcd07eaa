/*
 * dnkey.h - one comparison key per distinguished name, so that two
 * spellings of a DN that a directory's matching rules take as equal
 * compare equal in jitd too (a DN in deny_users against the directory's
 * spelling of the user's DN; a standing member in jitd.conf against the
 * group's value).
 */
#ifndef JITD_DNKEY_H
#define JITD_DNKEY_H

#include <stdbool.h>

/*
 * The key of DN s (new heap string), or NULL if s does not parse as a DN
 * (libldap's ldap_str2dn). Escapes are decoded (`\,`, `\2C` and `"..."`
 * are one value); attribute types are lower-cased; values are case-folded
 * over all of Unicode (through the C.UTF-8 locale; ASCII only where that
 * locale is missing), except that no non-ASCII character folds to an
 * ASCII one, with leading and trailing spaces dropped (inner spaces kept);
 * the values of a multi-valued RDN are sorted. Type names are not mapped
 * to OIDs ("cn" and "2.5.4.3" differ). It errs towards "different": two
 * keys that are equal name one entry on OpenLDAP and AD alike.
 */
char *dn_key(const char *s);

/*
 * The next character of *p, lower-cased over all of Unicode (C.UTF-8;
 * ASCII only where that locale is missing), *p moved past it; 0 at the end.
 * A byte that is not part of well-formed UTF-8 is returned as 0x110000
 * plus the byte, which no character equals. Unlike dn_key, a non-ASCII
 * letter whose lower case is ASCII (U+212A, the Kelvin sign) folds to it:
 * for comparisons where "equal" can only refuse.
 */
unsigned fold_next(const char **p);

/* Does the fold cover all of Unicode (the C.UTF-8 locale is there)? */
bool fold_is_unicode(void);

#endif
