/*
 * kerberos.h - GSSAPI initiator credentials taken from a client keytab into
 * a private credential cache. The only module that includes <gssapi.h>.
 *
 * jitd never relies on a ticket someone else obtained (no cron kinit, no
 * shared ccache): for a directory with `keytab`, the directory module calls
 * krb_cred_acquire() before each SASL GSSAPI bind and hands the credential
 * to libldap. MIT Kerberos then gets a TGT from the keytab into the private
 * cache the first time it is needed, reuses it while it is valid, and gets
 * a new one from the keytab once it has expired (or reached its refresh
 * time), so tickets are renewed without anyone's help.
 *
 *   void *cred;
 *   char err[256];
 *   if (krb_cred_acquire(keytab, principal, "MEMORY:jitd-corp", &cred, err, sizeof(err)) == JIT_OK) {
 *           ... ldap bind with cred (see ldapbind.c) ...
 *           krb_cred_release(cred);
 *   }
 */
#ifndef JITD_KERBEROS_H
#define JITD_KERBEROS_H

#include <stddef.h>
#include "err.h"

/*
 * Acquires initiator credentials for principal (NULL: the first principal
 * of the keytab) from keytab, cached in ccache (a credential cache name,
 * e.g. "MEMORY:jitd-corp"). MIT may ask the KDC here or at the bind. On
 * success *cred
 * is an opaque gss_cred_id_t to release with krb_cred_release. On failure
 * returns JIT_EDIRUNAVAIL and a message (GSSAPI's own words) in err.
 */
int krb_cred_acquire(const char *keytab, const char *principal, const char *ccache,
		     void **cred, char *err, size_t errlen) JIT_WUR;
void krb_cred_release(void *cred); /* NULL-safe */

#endif
