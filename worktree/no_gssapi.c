/* GSSAPI entry points for a statically linked libgit2, answering "unavailable".
 *
 * Debian's libgit2 uses GSSAPI only for HTTP "Negotiate" (Kerberos/SPNEGO) authentication.
 * corral's git layer works on local repositories only and never opens a remote, so that path is
 * never taken. Linking the real library would load the Kerberos libraries (nine shared objects,
 * about 1 ms) at every start of corral, `corral exec` included. If a remote were ever used, the
 * Negotiate authenticator would fail cleanly with GSS_S_UNAVAILABLE.
 */
#include <gssapi/gssapi.h>

gss_OID GSS_C_NT_HOSTBASED_SERVICE = GSS_C_NO_OID;

OM_uint32 gss_indicate_mechs(OM_uint32* minor, gss_OID_set* mechs) {
  *minor = 0;
  *mechs = GSS_C_NO_OID_SET;
  return GSS_S_UNAVAILABLE;
}

OM_uint32 gss_import_name(OM_uint32* minor, gss_buffer_t buffer, gss_OID type, gss_name_t* name) {
  (void)buffer;
  (void)type;
  *minor = 0;
  *name = GSS_C_NO_NAME;
  return GSS_S_UNAVAILABLE;
}

OM_uint32 gss_init_sec_context(OM_uint32* minor, gss_cred_id_t cred, gss_ctx_id_t* context,
                               gss_name_t target, gss_OID mech, OM_uint32 flags, OM_uint32 time,
                               gss_channel_bindings_t bindings, gss_buffer_t input,
                               gss_OID* actual_mech, gss_buffer_t output, OM_uint32* ret_flags,
                               OM_uint32* ret_time) {
  (void)cred, (void)context, (void)target, (void)mech, (void)flags, (void)time, (void)bindings;
  (void)input, (void)actual_mech, (void)ret_flags, (void)ret_time;
  *minor = 0;
  output->length = 0;
  output->value = 0;
  return GSS_S_UNAVAILABLE;
}

OM_uint32 gss_display_status(OM_uint32* minor, OM_uint32 status, int type, gss_OID mech,
                             OM_uint32* context, gss_buffer_t text) {
  (void)status, (void)type, (void)mech;
  *minor = 0;
  *context = 0;
  text->length = 0;
  text->value = 0;
  return GSS_S_UNAVAILABLE;
}

OM_uint32 gss_delete_sec_context(OM_uint32* minor, gss_ctx_id_t* context, gss_buffer_t output) {
  (void)context, (void)output;
  *minor = 0;
  return GSS_S_COMPLETE;
}

OM_uint32 gss_release_buffer(OM_uint32* minor, gss_buffer_t buffer) {
  (void)buffer;
  *minor = 0;
  return GSS_S_COMPLETE;
}

OM_uint32 gss_release_name(OM_uint32* minor, gss_name_t* name) {
  (void)name;
  *minor = 0;
  return GSS_S_COMPLETE;
}

OM_uint32 gss_release_oid_set(OM_uint32* minor, gss_OID_set* set) {
  (void)set;
  *minor = 0;
  return GSS_S_COMPLETE;
}
