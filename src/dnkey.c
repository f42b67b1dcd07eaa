/*
 * dnkey.c - comparison keys of DNs (dnkey.h). Pure: no I/O besides
 * loading the C.UTF-8 locale's case mapping once. Input is untrusted
 * (config, directory): parsed by libldap only, every length checked.
 */
#include <locale.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include <ldap.h>

#include "dnkey.h"
#include "util.h"

static pthread_once_t fold_once = PTHREAD_ONCE_INIT;
static locale_t fold_loc = (locale_t)0;

static void fold_init(void)
{
	fold_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static void utf8_put(struct strbuf *sb, unsigned c)
{
	char b[4];
	size_t n;
	if (c < 0x80) {
		b[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		b[0] = (char)(0xc0 | (c >> 6));
		b[1] = (char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		b[0] = (char)(0xe0 | (c >> 12));
		b[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		b[2] = (char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | (c >> 18));
		b[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		b[3] = (char)(0x80 | (c & 0x3f));
		n = 4;
	}
	sb_add(sb, b, n);
}

/* One byte of the key: letters, digits, a few marks and non-ASCII bytes as
 * they are, anything else (the DN's separators among them) as \xx. */
static void put_byte(struct strbuf *sb, unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80 || c == ' ' ||
	    c == '-' || c == '.' || c == '_') {
		char ch = (char)c;
		sb_add(sb, &ch, 1);
	} else {
		sb_addf(sb, "\\%02x", c);
	}
}

/*
 * A string value, case-folded, its leading and trailing spaces dropped.
 * Conservative, as the key also decides that two members are one (drift
 * reconciliation): inner spaces are kept as they are (AD does not fold
 * them), and a non-ASCII letter whose lower case is ASCII (U+0130, the
 * Kelvin sign U+212A) keeps its own code point, so a look-alike never
 * matches a plain ASCII name.
 */
static void put_value(struct strbuf *sb, const unsigned char *v, size_t n)
{
	pthread_once(&fold_once, fold_init);
	while (n > 0 && v[n - 1] == ' ')
		n--;
	while (n > 0 && v[0] == ' ')
		v++, n--;
	for (size_t i = 0; i < n;) {
		unsigned cp;
		size_t len;
		if (!utf8_decode(v + i, n - i, &cp, &len)) {
			sb_addf(sb, "\\%02x", v[i]); /* not UTF-8: kept as it is */
			i++;
			continue;
		}
		i += len;
		if (cp < 0x80) {
			if (cp >= 'A' && cp <= 'Z')
				cp += 'a' - 'A';
			put_byte(sb, (unsigned char)cp);
			continue;
		}
		if (fold_loc != (locale_t)0) {
			unsigned lo = (unsigned)towlower_l((wint_t)cp, fold_loc);
			if (lo >= 0x80)
				cp = lo;
		}
		utf8_put(sb, cp);
	}
}

bool fold_is_unicode(void)
{
	pthread_once(&fold_once, fold_init);
	return fold_loc != (locale_t)0;
}

unsigned fold_next(const char **p)
{
	const unsigned char *v = (const unsigned char *)*p;
	size_t n = strnlen(*p, 4);
	unsigned cp;
	size_t len;

	if (n == 0)
		return 0;
	pthread_once(&fold_once, fold_init);
	if (!utf8_decode(v, n, &cp, &len)) {
		(*p)++;
		return 0x110000u + v[0]; /* no code point is this */
	}
	*p += len;
	if (cp < 0x80)
		return cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp;
	if (fold_loc != (locale_t)0)
		cp = (unsigned)towlower_l((wint_t)cp, fold_loc);
	return cp;
}

static void put_ava(struct strbuf *sb, const LDAPAVA *a)
{
	for (size_t i = 0; i < a->la_attr.bv_len; i++) {
		unsigned char c = (unsigned char)a->la_attr.bv_val[i];
		put_byte(sb, (unsigned char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c));
	}
	if (a->la_flags & LDAP_AVA_BINARY) {
		sb_add(sb, "=#", 2); /* the BER form: compared byte for byte */
		for (size_t i = 0; i < a->la_value.bv_len; i++)
			sb_addf(sb, "%02x", (unsigned char)a->la_value.bv_val[i]);
	} else {
		sb_add(sb, "=", 1);
		put_value(sb, (const unsigned char *)a->la_value.bv_val, a->la_value.bv_len);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *dn_key(const char *s)
{
	LDAPDN dn = NULL;
	struct strbuf out = { 0 };

	if (s == NULL || strchr(s, '=') == NULL ||
	    ldap_str2dn(s, &dn, LDAP_DN_FORMAT_LDAP) != LDAP_SUCCESS || dn == NULL) {
		ldap_dnfree(dn);
		return NULL;
	}
	for (size_t r = 0; dn[r] != NULL; r++) {
		size_t n = 0;
		while (dn[r][n] != NULL)
			n++;
		char **avas = xcalloc(n ? n : 1, sizeof(*avas));
		for (size_t i = 0; i < n; i++) {
			struct strbuf one = { 0 };
			put_ava(&one, dn[r][i]);
			avas[i] = sb_steal(&one);
		}
		qsort(avas, n, sizeof(*avas), cmp_str);
		if (r > 0)
			sb_add(&out, ",", 1);
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				sb_add(&out, "+", 1);
			sb_addstr(&out, avas[i]);
			free(avas[i]);
		}
		free(avas);
	}
	ldap_dnfree(dn);
	return sb_steal(&out);
}
