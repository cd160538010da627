// Owns PostgreSQL: connection and migrations (DatabaseService), the daily
// partitions of samples and their retention (PartitionMaintainer), and the
// single batch write path for samples (SampleWriter), the folding of quiet
// minute rows into the hourly tier (HourlyFolder) and the read SQL
// (TelemetryQueries, SeriesQueries).
import { Module } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { DatabaseService } from './database.service';
import { HourlyFolder } from './hourly-folder';
import { PartitionMaintainer } from './partition-maintainer';
import { SampleWriter } from './sample-writer';
import { SeriesQueries } from './series-queries';
import { TelemetryQueries } from './telemetry-queries';

@Module({
  providers: [
    {
      provide: DatabaseService,
      inject: [APP_CONFIG],
      useFactory: async (config: AppConfig) => {
        const db = new DatabaseService(config);
        await db.start();
        return db;
      },
    },
    {
      provide: PartitionMaintainer,
      inject: [DatabaseService, APP_CONFIG],
      useFactory: (db: DatabaseService, config: AppConfig) => new PartitionMaintainer(db, config.storage.retentionDays),
    },
    SampleWriter,
    HourlyFolder,
    TelemetryQueries,
    SeriesQueries,
  ],
  exports: [DatabaseService, PartitionMaintainer, SampleWriter, HourlyFolder, TelemetryQueries, SeriesQueries],
})
export class StorageModule {}
