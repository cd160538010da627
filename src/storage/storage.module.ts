// Owns PostgreSQL: connection and migrations (DatabaseService), and the single
// batch write path for samples (SampleWriter).
import { Module } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { DatabaseService } from './database.service';
import { SampleWriter } from './sample-writer';

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
    SampleWriter,
  ],
  exports: [DatabaseService, SampleWriter],
})
export class StorageModule {}
