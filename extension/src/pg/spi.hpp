// Statements through SPI. Each function runs its PostgreSQL calls inside pg_call(): an ERROR
// comes out as a PgError. A statement's rows are read with value() and text_value() until the next
// statement or free_rows(); a cursor's, after each fetch().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pg/boundary.hpp"

namespace envsync::pg {

// The parameters $1, $2, ... of a statement.
class Params {
public:
    Params &add(Oid type, Datum value, bool null = false) {
        types_.push_back(type);
        values_.push_back(value);
        nulls_.push_back(null ? 'n' : ' ');
        return *this;
    }
    int size() const { return static_cast<int>(types_.size()); }
    Oid *types() { return types_.data(); }
    Datum *values() { return values_.data(); }
    char *nulls() { return nulls_.data(); }

private:
    std::vector<Oid> types_;
    std::vector<Datum> values_;
    std::vector<char> nulls_;
};

void connect();
void finish();

// Runs a statement (SELECT, or a data-modifying one with read_only false); returns how many
// rows it returned.
uint64_t execute(const std::string &sql, Params params, bool read_only);

Datum value(uint64_t row, int column, bool *isnull);
Datum value(uint64_t row, int column);  // NULL as (Datum) 0
std::string text_value(uint64_t row, int column);  // a text column; empty for NULL
// A pass-by-reference value copied out of SPI's memory into the caller's.
Datum transfer(uint64_t row, int column, bool *isnull);
void free_rows();
// Takes the last statement's or fetch's rows out of the way of the next statement, to free them
// later (their values stay valid until then).
SPITupleTable *keep_rows();
void free_rows(SPITupleTable *rows);

Portal open(const char *name, const std::string &sql, Params params, bool read_only);
// A cursor opened by the caller (a refcursor's name); an ERROR if there is none.
Portal find_cursor(const std::string &name);
uint64_t fetch(Portal cursor, long count);
void close(Portal cursor);

}  // namespace envsync::pg
