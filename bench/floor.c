/**
 * collectd-dotnet - bench/floor.c
 *
 * A collectd plugin for bench/cost.sh's mode "floor": every interval it
 * dispatches a given number of gauge values and does nothing else (no
 * socket, no parsing, no table). What collectd costs with it is what any
 * plugin that hands collectd as many values costs at least: the floor
 * under the dotnet plugin's figure for the same number of values.
 *
 *   LoadPlugin floor
 *   <Plugin floor>
 *     Values 270     # per interval, in all
 *     PerInstance 27 # values per plugin instance ("t0", "t1", ...)
 *   </Plugin>
 *
 * Values go out as the dotnet plugin's do: one value list per batch,
 * re-filled for each value, dispatched one by one.
 */
#include "collectd.h"

#include "plugin.h"

#include <stdio.h>

static int nvalues = 27;
static int per_instance = 27;
static uint64_t round_no;

static int floor_config(oconfig_item_t *ci) {
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = &ci->children[i];
    if (c->values_num != 1 || c->values[0].type != OCONFIG_TYPE_NUMBER ||
        c->values[0].value.number < 1 || c->values[0].value.number > 1e6) {
      ERROR("floor: %s needs one number from 1 to 1000000", c->key);
      return -1;
    }
    if (strcasecmp(c->key, "Values") == 0)
      nvalues = (int)c->values[0].value.number;
    else if (strcasecmp(c->key, "PerInstance") == 0)
      per_instance = (int)c->values[0].value.number;
    else {
      ERROR("floor: unknown option %s", c->key);
      return -1;
    }
  }
  return 0;
}

static int floor_read(void) {
  value_list_t vl = VALUE_LIST_INIT;
  value_t v;
  vl.values = &v;
  vl.values_len = 1;
  vl.time = cdtime();
  snprintf(vl.plugin, sizeof(vl.plugin), "floor");
  snprintf(vl.type, sizeof(vl.type), "gauge");
  round_no++;
  for (int i = 0; i < nvalues; i++) {
    snprintf(vl.plugin_instance, sizeof(vl.plugin_instance), "t%d",
             i / per_instance);
    snprintf(vl.type_instance, sizeof(vl.type_instance), "v%d",
             i % per_instance);
    v.gauge = (gauge_t)(round_no + (uint64_t)i);
    plugin_dispatch_values(&vl);
  }
  return 0;
}

void module_register(void) {
  plugin_register_complex_config("floor", floor_config);
  plugin_register_read("floor", floor_read);
}
