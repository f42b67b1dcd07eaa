/*
 * kerberos.c - GSSAPI initiator credentials from a client keytab into a
 * private credential cache (gss_acquire_cred_from, MIT's credential store
 * extension). Trust: the keytab is a secret owned by jitd's user; this module
 * only names it to the Kerberos library and never reads or logs its keys.
 */
#include <stdio.h>
#include <string.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "kerberos.h"

/* Appends GSSAPI's text for status code `code` of kind `type` to err. */
static void append_status(char *err, size_t errlen, OM_uint32 code, int type)
{
	OM_uint32 more = 0, minor;
	size_t used = strlen(err);

	do {
		gss_buffer_desc msg = GSS_C_EMPTY_BUFFER;
		if (GSS_ERROR(gss_display_status(&minor, code, type, GSS_C_NO_OID, &more, &msg)))
			break;
		if (used < errlen)
			/* Truncation is fine: a bounded diagnostic. */
			(void)snprintf(err + used, errlen - used, "%s%.*s", used ? "; " : "",
				       (int)msg.length, (const char *)msg.value);
		used = strlen(err);
		(void)gss_release_buffer(&minor, &msg);
	} while (more != 0);
}

static void gss_error(char *err, size_t errlen, const char *what, OM_uint32 major,
		      OM_uint32 minor)
{
	(void)snprintf(err, errlen, "%s: ", what);
	append_status(err, errlen, major, GSS_C_GSS_CODE);
	if (minor != 0)
		append_status(err, errlen, minor, GSS_C_MECH_CODE);
}

int krb_cred_acquire(const char *keytab, const char *principal, const char *ccache,
		     void **cred, char *err, size_t errlen)
{
	gss_key_value_element_desc elems[2] = {
		{ "client_keytab", keytab },
		{ "ccache", ccache },
	};
	gss_key_value_set_desc store = { 2, elems };
	gss_OID_set_desc mechs = { 1, (gss_OID)gss_mech_krb5 };
	gss_name_t name = GSS_C_NO_NAME;
	gss_cred_id_t c = GSS_C_NO_CREDENTIAL;
	OM_uint32 major, minor = 0;
	int rc = JIT_EDIRUNAVAIL;

	err[0] = '\0';
	if (principal != NULL) {
		gss_buffer_desc b = { strlen(principal), (void *)principal };
		major = gss_import_name(&minor, &b, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
		if (GSS_ERROR(major)) {
			gss_error(err, errlen, "principal", major, minor);
			return JIT_EDIRUNAVAIL;
		}
	}
	major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE,
				      &store, &c, NULL, NULL);
	if (GSS_ERROR(major)) {
		gss_error(err, errlen, "credentials from keytab", major, minor);
		goto out;
	}
	*cred = c;
	rc = JIT_OK;
out:
	if (name != GSS_C_NO_NAME)
		(void)gss_release_name(&minor, &name);
	return rc;
}

void krb_cred_release(void *cred)
{
	gss_cred_id_t c = cred;
	OM_uint32 minor;

	if (c != GSS_C_NO_CREDENTIAL)
		(void)gss_release_cred(&minor, &c);
}
