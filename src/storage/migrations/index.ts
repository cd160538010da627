import { InitialSchema1732200000000 } from './1732200000000-initial-schema';
import { QueryIndexes1732300000000 } from './1732300000000-query-indexes';
import { HotRollupUpdates1732350000000 } from './1732350000000-hot-rollup-updates';
import { PartitionSamples1732400000000 } from './1732400000000-partition-samples';
import { MinuteAggregates1732500000000 } from './1732500000000-minute-aggregates';
import { DeviceStatus1732600000000 } from './1732600000000-device-status';
import { Alarms1732700000000 } from './1732700000000-alarms';
import { HourlyFold1732800000000 } from './1732800000000-hourly-fold';
import { DeviceDeleteAlarms1732900000000 } from './1732900000000-device-delete-alarms';

/** Every migration, oldest first; the DataSource and the CLI both use this list. */
export const MIGRATIONS = [
  InitialSchema1732200000000,
  QueryIndexes1732300000000,
  HotRollupUpdates1732350000000,
  PartitionSamples1732400000000,
  MinuteAggregates1732500000000,
  DeviceStatus1732600000000,
  Alarms1732700000000,
  HourlyFold1732800000000,
  DeviceDeleteAlarms1732900000000,
];
