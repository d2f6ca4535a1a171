// SQLite 3, for coturn's user database (turn_secret rows).
#ifndef TURNKEEPER_CSQLITE_SHIM_H
#define TURNKEEPER_CSQLITE_SHIM_H

#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast macro Swift cannot import: SQLite copies the bound value.
static inline int turnkeeper_sqlite_bind_text(sqlite3_stmt *statement, int index, const char *text, int length) {
    return sqlite3_bind_text(statement, index, text, length, SQLITE_TRANSIENT);
}

#endif
