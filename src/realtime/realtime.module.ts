// Owns live feeds: the /ws gateway, cross-instance fan-out of committed
// samples over Redis pub/sub. Its rate limit is the `ws` throttler of the
// global ThrottlerModule (src/rate-limit/).
import { Module } from '@nestjs/common';
import { QueryModule } from '../query/query.module';
import { FanoutService } from './fanout.service';
import { RealtimeGateway } from './realtime.gateway';

@Module({
  imports: [QueryModule],
  providers: [FanoutService, RealtimeGateway],
  exports: [FanoutService],
})
export class RealtimeModule {}
