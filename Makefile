# envsync: PostgreSQL extension, built with PGXS.
#   make && make install       build and install into the PostgreSQL found by pg_config
#   make installcheck          pg_regress suite (sql/, expected/) against a running server
# The control file lives in extension/, so PGXS's EXTENSION variable (which wants it at the top)
# is not used: MODULEDIR installs the files where CREATE EXTENSION looks.
EXTNAME      = envsync
# The version, in this one place: the control file and the scripts are made from it.
EXTVERSION   = 0.2.0
# The upgrade scripts: each is its steps (extension/upgrade/FROM--TO.sql) around the install
# script, whose every object is created idempotently.
UPGRADES     = 0.1.0--0.2.0
MODULEDIR    = extension
MODULE_big   = envsync
OBJS         = $(patsubst %.cpp,%.o,$(wildcard extension/src/*.cpp extension/src/pg/*.cpp))

# The install script is assembled from one file per concept, in dependency order.
SQL_PARTS    = schema catalog rows tracking link table_reads remote environments modules progress \
               outbox change_log review intake classification compare apply revert runs messages schedule \
               dump privileges
INSTALL_SQL  = $(foreach p,$(SQL_PARTS),extension/sql/$(p).sql)
UPGRADE_SQL  = $(foreach u,$(UPGRADES),extension/$(EXTNAME)--$(u).sql)
DATA_built   = extension/$(EXTNAME)--$(EXTVERSION).sql $(UPGRADE_SQL) extension/$(EXTNAME).control

REGRESS      = boundary row_hash catalog tracking syncs security
REGRESS_OPTS = --load-extension=postgres_fdw --load-extension=envsync

PG_CONFIG   ?= pg_config
PG_CPPFLAGS += -I$(srcdir)/extension/src
PG_CXXFLAGS += -std=c++17 -Wno-register -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -MMD -MP
SHLIB_LINK  += -lfmt -lstdc++ -lpq
EXTRA_CLEAN  = $(OBJS:.o=.d)

# No LLVM bitcode: PGXS would compile the C++ sources with clang without PG_CXXFLAGS, and JIT
# inlining of this library buys nothing.
override with_llvm = no
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
# libpq's header, after the server's (whose pg_config.h must win): the apply streams its records
# on postgres_fdw's connection (extension/src/pg/remote_copy.cpp).
override CPPFLAGS += -I$(shell $(PG_CONFIG) --includedir)

extension/$(EXTNAME)--$(EXTVERSION).sql: $(INSTALL_SQL)
	cat $^ > $@

# The install script goes where the steps say "-- @install script@".
$(UPGRADE_SQL): extension/$(EXTNAME)--%.sql: extension/upgrade/%.sql $(INSTALL_SQL)
	grep -qx -- '-- @install script@' $<
	sed '/^-- @install script@$$/,$$d' $< > $@
	cat $(INSTALL_SQL) >> $@
	sed '1,/^-- @install script@$$/d' $< >> $@

extension/$(EXTNAME).control: extension/$(EXTNAME).control.in Makefile
	sed 's/@EXTVERSION@/$(EXTVERSION)/' $< > $@

-include $(OBJS:.o=.d)
