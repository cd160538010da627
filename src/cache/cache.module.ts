// Owns the hot-data cache: one CacheService over Redis or process memory,
// the four cache classes' keys and TTLs, and hit/miss accounting.
import { Module } from '@nestjs/common';
import { CacheService } from './cache.service';

@Module({ providers: [CacheService], exports: [CacheService] })
export class CacheModule {}
