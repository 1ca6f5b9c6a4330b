#include "pg/spi.hpp"

namespace envsync::pg {

void connect() {
    pg_call([] {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "envsync: SPI_connect failed");
    });
}

void finish() {
    pg_call([] { SPI_finish(); });
}

uint64_t execute(const std::string &sql, Params params, bool read_only) {
    return pg_call([&] {
        int status = SPI_execute_with_args(sql.c_str(), params.size(), params.types(), params.values(),
                                           params.nulls(), read_only, 0);
        if (status < 0)
            elog(ERROR, "envsync: SPI_execute_with_args failed: %s", SPI_result_code_string(status));
        return static_cast<uint64_t>(SPI_processed);
    });
}

Datum value(uint64_t row, int column, bool *isnull) {
    return pg_call([&] { return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, isnull); });
}

Datum value(uint64_t row, int column) {
    bool isnull;
    Datum datum = value(row, column, &isnull);
    return isnull ? Datum(0) : datum;
}

std::string text_value(uint64_t row, int column) {
    // The value's bytes where they are (a copy only if it was compressed or toasted, freed
    // here): a caller reading many rows leaves nothing behind in the function's memory.
    struct Bytes {
        const char *data;
        size_t length;
        void *copy;
    };
    Bytes bytes = pg_call([&] {
        bool isnull;
        Datum datum = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, &isnull);
        if (isnull)
            return Bytes{nullptr, 0, nullptr};
        text *value = DatumGetTextPP(datum);
        return Bytes{VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value),
                     static_cast<void *>(value) == DatumGetPointer(datum) ? nullptr : static_cast<void *>(value)};
    });
    std::string result = bytes.data ? std::string(bytes.data, bytes.length) : std::string();
    if (bytes.copy)
        pg_call([&] { pfree(bytes.copy); });
    return result;
}

Datum transfer(uint64_t row, int column, bool *isnull) {
    return pg_call([&] {
        Datum datum = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, isnull);
        if (*isnull)
            return Datum(0);
        Form_pg_attribute att = TupleDescAttr(SPI_tuptable->tupdesc, column - 1);
        return SPI_datumTransfer(datum, att->attbyval, att->attlen);
    });
}

void free_rows() {
    pg_call([] { SPI_freetuptable(SPI_tuptable); });
}

SPITupleTable *keep_rows() {
    SPITupleTable *rows = SPI_tuptable;
    SPI_tuptable = nullptr;
    return rows;
}

void free_rows(SPITupleTable *rows) {
    pg_call([&] { SPI_freetuptable(rows); });
}

Portal open(const char *name, const std::string &sql, Params params, bool read_only) {
    return pg_call([&] {
        return SPI_cursor_open_with_args(name, sql.c_str(), params.size(), params.types(), params.values(),
                                         params.nulls(), read_only, 0);
    });
}

Portal find_cursor(const std::string &name) {
    return pg_call([&] {
        Portal cursor = SPI_cursor_find(name.c_str());
        if (cursor == nullptr)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_CURSOR), errmsg("cursor \"%s\" does not exist", name.c_str())));
        return cursor;
    });
}

uint64_t fetch(Portal cursor, long count) {
    return pg_call([&] {
        SPI_cursor_fetch(cursor, true, count);
        return static_cast<uint64_t>(SPI_processed);
    });
}

void close(Portal cursor) {
    pg_call([&] { SPI_cursor_close(cursor); });
}

}  // namespace envsync::pg
