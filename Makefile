# envsync: PostgreSQL extension, built with PGXS.
#   make && make install       build and install into the PostgreSQL found by pg_config
#   make installcheck          pg_regress suite (sql/, expected/) against a running server
# The control file lives in extension/, so PGXS's EXTENSION variable (which wants it at the top)
# is not used: MODULEDIR installs the files where CREATE EXTENSION looks.
EXTNAME      = envsync
EXTVERSION   = 0.1.0
MODULEDIR    = extension
MODULE_big   = envsync
OBJS         = $(patsubst %.cpp,%.o,$(wildcard extension/src/*.cpp extension/src/pg/*.cpp))

# The install script is assembled from one file per concept, in dependency order.
SQL_PARTS    = schema catalog rows tracking link table_reads remote environments modules progress \
               change_log review intake classification compare apply revert runs messages outbox schedule \
               dump privileges
DATA_built   = extension/$(EXTNAME)--$(EXTVERSION).sql
DATA         = extension/$(EXTNAME).control

REGRESS      = boundary row_hash catalog tracking syncs security
REGRESS_OPTS = --load-extension=postgres_fdw --load-extension=envsync

PG_CONFIG   ?= pg_config
PG_CPPFLAGS += -I$(srcdir)/extension/src
PG_CXXFLAGS += -std=c++17 -Wno-register -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -MMD -MP
SHLIB_LINK  += -lfmt -lstdc++
EXTRA_CLEAN  = $(OBJS:.o=.d)

# No LLVM bitcode: PGXS would compile the C++ sources with clang without PG_CXXFLAGS, and JIT
# inlining of this library buys nothing.
override with_llvm = no
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

extension/$(EXTNAME)--$(EXTVERSION).sql: $(foreach p,$(SQL_PARTS),extension/sql/$(p).sql)
	cat $^ > $@

-include $(OBJS:.o=.d)
