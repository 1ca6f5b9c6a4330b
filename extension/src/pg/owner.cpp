#include "pg/owner.hpp"

namespace envsync::pg {

OwnerScope enter_owner(Oid owner, bool reading) {
    OwnerScope scope{};
    pg_call([&] {
        if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("role with OID %u does not exist", owner)));
        GetUserIdAndSecContext(&scope.user, &scope.security_context);
        SetUserIdAndSecContext(owner, scope.security_context | SECURITY_LOCAL_USERID_CHANGE |
                                          SECURITY_RESTRICTED_OPERATION);
        scope.settings_level = NewGUCNestLevel();
        if (reading)
            set_config_option("row_security", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
        set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    });
    return scope;
}

void leave_owner(const OwnerScope &scope) {
    pg_call([&] {
        AtEOXact_GUC(false, scope.settings_level);
        SetUserIdAndSecContext(scope.user, scope.security_context);
    });
}

}  // namespace envsync::pg
