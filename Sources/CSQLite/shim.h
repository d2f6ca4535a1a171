// SQLite 3, for coturn's user database (turn_secret rows).
#ifndef TURNKEEPER_CSQLITE_SHIM_H
#define TURNKEEPER_CSQLITE_SHIM_H

#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast macro Swift cannot import: SQLite copies the bound value.
static inline int turnkeeper_sqlite_bind_text(sqlite3_stmt *statement, int index, const char *text, int length) {
    return sqlite3_bind_text(statement, index, text, length, SQLITE_TRANSIENT);
}

// sqlite3_db_config is variadic, which Swift cannot call. Closing the last connection to a WAL database
// checkpoints and removes the WAL under an exclusive lock, which a coturn reading at that moment meets as
// "database is locked"; this leaves that to SQLite's passive auto-checkpoints instead.
static inline int turnkeeper_sqlite_no_checkpoint_on_close(sqlite3 *db) {
    return sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)0);
}

#endif
