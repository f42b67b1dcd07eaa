/*
 * test_directory.c - the parts of the directory module (directory.h) that
 * need no server: AD range retrieval parsing, member value comparison keys,
 * the shared directory health (fail fast while down, probe claiming) against
 * a port where nothing listens, which configurations run over TLS with
 * nothing proving the server (the start-up warning), and credential cache
 * names of long directory names.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "directory.h"
#include "util.h"
#include "t.h"

static void test_range(void)
{
	long lo = 7, hi = 7;

	CHECK(dir_parse_range("member;range=0-1499", "member", &lo, &hi));
	CHECK(lo == 0 && hi == 1499);
	CHECK(dir_parse_range("Member;Range=1500-*", "member", &lo, &hi));
	CHECK(lo == 1500 && hi == -1);
	CHECK(dir_parse_range("member;range=3000-3000", "member", &lo, &hi));
	CHECK(lo == 3000 && hi == 3000);
	/* Not a range of this attribute, or malformed: untouched outputs. */
	lo = hi = 7;
	CHECK(!dir_parse_range("member", "member", &lo, &hi));
	CHECK(!dir_parse_range("memberUid;range=0-10", "member", &lo, &hi));
	CHECK(!dir_parse_range("member;range=", "member", &lo, &hi));
	CHECK(!dir_parse_range("member;range=5", "member", &lo, &hi));
	CHECK(!dir_parse_range("member;range=5-", "member", &lo, &hi));
	CHECK(!dir_parse_range("member;range=10-5", "member", &lo, &hi));
	CHECK(!dir_parse_range("member;range=-1-5", "member", &lo, &hi));
	CHECK(!dir_parse_range("member;range=0-1499x", "member", &lo, &hi));
	CHECK(!dir_parse_range("member;range=0-*x", "member", &lo, &hi));
	CHECK(!dir_parse_range("member;range=99999999999999999999999-*", "member", &lo, &hi));
	CHECK(!dir_parse_range("member;range=0-9223372036854775807", "member", &lo, &hi));
	CHECK(!dir_parse_range("member;binary", "member", &lo, &hi));
	CHECK(lo == 7 && hi == 7);
}

static void check_key(const char *in, const char *want)
{
	char *k = dir_value_key(in);
	CHECK_STR(k, want);
	free(k);
}

/* dir_dn_moved: the same first RDN under another parent. */
static void test_dn_moved(void)
{
	CHECK(dir_dn_moved("uid=a,ou=hidden,dc=x", "uid=a,ou=people,dc=x"));
	CHECK(dir_dn_moved("UID=A,ou=deep,ou=hidden,dc=x", "uid=a,ou=people,dc=x"));
	CHECK(dir_dn_moved("uid=a,dc=x", "uid=a,ou=people,dc=x"));
	CHECK(!dir_dn_moved("uid=b,ou=people,dc=x", "uid=a,ou=people,dc=x")); /* renamed */
	CHECK(!dir_dn_moved("uid=a,ou=people,dc=x", "uid=a,ou=people,dc=x")); /* the same */
	CHECK(!dir_dn_moved("UID=a, OU=People,dc=x", "uid=a,ou=people,dc=x")); /* spelled */
	CHECK(!dir_dn_moved("uid=b,ou=hidden,dc=x", "uid=a,ou=people,dc=x")); /* both */
	CHECK(!dir_dn_moved("alice", "uid=a,ou=people,dc=x"));                 /* no DN */
	CHECK(!dir_dn_moved("uid=a,ou=hidden,dc=x", "alice"));
}

static void test_value_key(void)
{
	/* DNs: case, optional spaces and escaping forms agree. */
	check_key("uid=alice,ou=people,dc=example,dc=com", "uid=alice,ou=people,dc=example,dc=com");
	check_key("UID=Alice, OU=People, DC=Example, DC=Com",
		  "uid=alice,ou=people,dc=example,dc=com");
	check_key("cn=Smith\\, John,ou=people,dc=x", "cn=smith\\2c john,ou=people,dc=x");
	check_key("cn=Smith\\2C John,ou=people,dc=x", "cn=smith\\2c john,ou=people,dc=x");
	check_key("cn=\"Smith, John\",ou=people,dc=x", "cn=smith\\2c john,ou=people,dc=x");
	/* Non-ASCII case and the escaped UTF-8 form agree; spaces inside a
	 * value are kept as they are, the values of an RDN sorted; no
	 * look-alike folds to ASCII (U+0130, the Kelvin sign U+212A). */
	check_key("uid=\xc3\x89mile,dc=x", "uid=\xc3\xa9mile,dc=x");
	check_key("uid=\\C3\\89MILE,dc=x", "uid=\xc3\xa9mile,dc=x");
	check_key("cn=A  B,dc=x", "cn=a  b,dc=x");
	check_key("cn=\\20A B\\20,dc=x", "cn=a b,dc=x");
	check_key("uid=\xc4\xb0van,dc=x", "uid=\xc4\xb0van,dc=x");
	check_key("cn=svc-bac\xe2\x84\xaaup,dc=x", "cn=svc-bac\xe2\x84\xaaup,dc=x");
	check_key("cn=a+uid=b,dc=x", "cn=a+uid=b,dc=x");
	check_key("UID=B+CN=A,dc=x", "cn=a+uid=b,dc=x");
	/* Pair keys keep their stored form (libldap's, ASCII lower-cased). */
	char *pk = dir_pair_key("corp", "CN=Ops, DC=X", "member", "UID=A");
	CHECK_STR(pk, "corp\ncn=ops,dc=x\nmember\nuid=a");
	free(pk);
	/* Not DNs (memberUid values, which compare case): as they are. */
	check_key("Alice", "Alice");
	check_key("alice", "alice");
	check_key("a=", "a=");
	check_key("", "");
}

/* A TCP port on 127.0.0.1 where nothing listens (bound, never listened). */
static int dead_port(int *fd)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t len = sizeof(sa);
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	if (*fd < 0 || bind(*fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(*fd, (struct sockaddr *)&sa, &len) != 0)
		return -1;
	return ntohs(sa.sin_port);
}

static void test_health(void)
{
	struct jit_dir_cfg cfg;
	struct dir_result res;
	struct dir_user u = { 0 };
	bool member = false;
	char why[256] = "";
	int fd = -1, port = dead_port(&fd);

	CHECK(port > 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.name = "dead";
	cfg.uri = xasprintf("ldap://127.0.0.1:%d", port);
	cfg.sasl_mech = "EXTERNAL";
	cfg.user_base = "ou=people,dc=example,dc=com";
	cfg.timeout = 2;
	cfg.connections = 1;

	struct dir_health *h = dir_health_new("dead");
	struct dir_conn *c = dir_conn_new(&cfg), *c2 = dir_conn_new(&cfg);
	struct dir_conn *passive = dir_conn_new(&cfg);
	dir_conn_set_health(c, h, false);
	dir_conn_set_health(c2, h, false);
	dir_conn_set_health(passive, h, true);
	CHECK(!dir_health_down(h, why, sizeof(why)));
	CHECK(!dir_health_probe_due(h, 100, 1)); /* not down: no probe */

	/* A passive connection (the reconciler's) that fails marks nothing. */
	CHECK(dir_resolve_user(passive, "alice", &u, &res) == JIT_EDIRUNAVAIL);
	CHECK(!dir_health_down(h, why, sizeof(why)));

	/* The first operation really tries, fails, and marks the directory down. */
	CHECK(dir_resolve_user(c, "alice", &u, &res) == JIT_EDIRUNAVAIL);
	CHECK(dir_health_down(h, why, sizeof(why)));
	CHECK(strstr(why, "directory dead unreachable since ") == why);

	/* Every connection of the directory now fails at once, saying why: the
	 * answer comes from the health state (a connect attempt would answer
	 * with the bind's error alone, without "unreachable since"), so no
	 * timing is needed to tell. */
	CHECK(dir_is_member(c2, "cn=g,dc=x", "member", "uid=a,dc=x", &member, &res) ==
	      JIT_EDIRUNAVAIL);
	CHECK(strstr(res.message, "unreachable since") != NULL);
	/* ... the passive one too */
	CHECK(dir_is_member(passive, "cn=g,dc=x", "member", "uid=a,dc=x", &member, &res) ==
	      JIT_EDIRUNAVAIL);
	CHECK(strstr(res.message, "unreachable since") != NULL);

	/* One probe at a time, at most once per interval. */
	CHECK(dir_health_probe_due(h, 1000, 5));
	CHECK(!dir_health_probe_due(h, 1010, 5)); /* still claimed */
	CHECK(dir_probe(c2, &res) == JIT_EDIRUNAVAIL);
	CHECK(!dir_health_probe_due(h, 1004, 5)); /* too soon after the last */
	CHECK(dir_health_probe_due(h, 1005, 5));
	CHECK(dir_probe(c2, &res) == JIT_EDIRUNAVAIL);
	CHECK(dir_health_recoveries(h) == 0);
	CHECK(dir_health_down(h, NULL, 0));

	dir_conn_free(c);
	dir_conn_free(c2);
	dir_conn_free(passive);
	dir_health_free(h);
	dir_health_free(NULL);
	free(cfg.uri);
	close(fd);
}

/* dir_cfg_tls_unverified() for cfg with these settings. */
static bool unverified(const char *mech, const char *uri, bool starttls, const char *reqcert,
		       const char *secprops)
{
	struct jit_dir_cfg d;

	memset(&d, 0, sizeof(d));
	d.sasl_mech = (char *)mech;
	d.uri = (char *)uri;
	d.starttls = starttls;
	d.tls_require_cert = (char *)reqcert;
	d.sasl_secprops = (char *)secprops;
	return dir_cfg_tls_unverified(&d);
}

static void test_tls_unverified(void)
{
	const char *s = "ldaps://dc1.example.com";

	CHECK(unverified("GSSAPI", s, false, "never", NULL));
	CHECK(unverified("GSSAPI", s, false, "allow", NULL));
	CHECK(unverified("GSSAPI", s, false, "try", NULL));
	CHECK(!unverified("GSSAPI", s, false, "demand", NULL));
	CHECK(!unverified("GSSAPI", s, false, NULL, NULL)); /* the default: demand */
	CHECK(unverified("GSSAPI", "ldap://dc1", true, "never", NULL));
	/* GSSAPI seals on plain ldap:// (minssf=56), whatever tls_require_cert. */
	CHECK(!unverified("GSSAPI", "ldap://dc1", false, "never", NULL));
	/* One TLS URI among others is enough. */
	CHECK(unverified("GSSAPI", "ldap://dc1 ldaps://dc2", false, "never", NULL));
	/* A layer asked for: protected (libldap refuses a bind without it). */
	CHECK(!unverified("GSSAPI", s, false, "never", "minssf=56"));
	CHECK(!unverified("GSSAPI", s, false, "never", "noplain,minssf=1,maxssf=256"));
	CHECK(unverified("GSSAPI", s, false, "never", "maxssf=0"));
	CHECK(unverified("GSSAPI", s, false, "never", "minssf=0"));
	CHECK(unverified("GSSAPI", s, false, "never", "minssf=x"));
	CHECK(unverified("GSSAPI", s, false, "never", "xminssf=56"));
	/* Password mechanisms and EXTERNAL over unverified TLS: the same hole. */
	CHECK(unverified("SCRAM-SHA-256", s, false, "never", NULL));
	CHECK(unverified(NULL, s, false, "allow", NULL));
	CHECK(!unverified("SCRAM-SHA-256", "ldap://dc1", false, "never", NULL));
	CHECK(!unverified("EXTERNAL", "ldapi://%2Frun%2Fslapd", false, "never", NULL));
}

/* Two GSSAPI directories whose longest accepted names differ only in
 * the last byte: the config takes both, and their credential caches (so
 * their Kerberos identities) stay apart. */
static void test_ccache_name(void)
{
	char a[CFG_NAME_MAX + 1], b[CFG_NAME_MAX + 1], ca[DIR_CCACHE_MAX], cb[DIR_CCACHE_MAX];
	char small[32] = "untouched", *text, *errs = NULL, *want;
	struct jit_config *cfg = NULL;

	memset(a, 'd', CFG_NAME_MAX);
	a[CFG_NAME_MAX] = '\0';
	memcpy(b, a, sizeof(a));
	b[CFG_NAME_MAX - 1] = 'e';
	text = xasprintf("directories = (\n"
			 "  { name = \"%s\"; uri = \"ldap://a.ex\"; user_base = \"dc=ex\";\n"
			 "    sasl_mech = \"GSSAPI\"; keytab = \"/etc/jitd/a.kt\"; },\n"
			 "  { name = \"%s\"; uri = \"ldap://b.ex\"; user_base = \"dc=ex\";\n"
			 "    sasl_mech = \"GSSAPI\"; keytab = \"/etc/jitd/b.kt\"; }\n"
			 ");\n"
			 "groups = ( { name = \"g\"; directory = \"%s\"; dn = \"cn=g\"; } );\n"
			 "clients = ( { uid = 0; } );\n",
			 a, b, a);
	CHECK(config_load_text("t.conf", text, CONFIG_NO_IDS, &cfg, &errs) == JIT_OK);
	if (errs)
		fprintf(stderr, "  unexpected errors:\n%s", errs);
	CHECK(cfg && cfg->n_dirs == 2);
	if (cfg && cfg->n_dirs == 2) {
		CHECK(dir_ccache_name(cfg->dirs[0].name, ca, sizeof(ca)) == JIT_OK);
		CHECK(dir_ccache_name(cfg->dirs[1].name, cb, sizeof(cb)) == JIT_OK);
		CHECK(strcmp(ca, cb) != 0);
		want = xasprintf("MEMORY:jitd-%s", a);
		CHECK_STR(ca, want);
		free(want);
		want = xasprintf("MEMORY:jitd-%s", b);
		CHECK_STR(cb, want);
		free(want);
	}
	/* A name that does not fit is refused, never cut. */
	b[0] = 'x';
	CHECK(dir_ccache_name(b, small, sizeof(small)) == JIT_ETOOBIG);
	CHECK_STR(small, "untouched");
	CHECK(dir_ccache_name("corp", small, sizeof(small)) == JIT_OK);
	CHECK_STR(small, "MEMORY:jitd-corp");
	CHECK(dir_ccache_name("0123456789012345678", small, sizeof(small)) == JIT_OK);
	CHECK(dir_ccache_name("01234567890123456789", small, sizeof(small)) == JIT_ETOOBIG);
	config_free(cfg);
	free(errs);
	free(text);
}

int main(void)
{
	test_range();
	test_dn_moved();
	test_value_key();
	test_health();
	test_tls_unverified();
	test_ccache_name();
	T_DONE();
}
