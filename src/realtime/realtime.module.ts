// Owns live feeds: the /ws gateway, cross-instance fan-out of committed
// samples over Redis pub/sub, and the shared token-bucket rate limit.
import { Module } from '@nestjs/common';
import { QueryModule } from '../query/query.module';
import { FanoutService } from './fanout.service';
import { RealtimeGateway } from './realtime.gateway';
import { TokenBucketLimiter } from './token-bucket';

@Module({
  imports: [QueryModule],
  providers: [FanoutService, TokenBucketLimiter, RealtimeGateway],
  exports: [FanoutService],
})
export class RealtimeModule {}
