// Owns the embedded MQTT broker, used only when MQTT_URL is unset.
import { Module } from '@nestjs/common';
import { EmbeddedBroker } from './embedded-broker';

@Module({ providers: [EmbeddedBroker], exports: [EmbeddedBroker] })
export class BrokerModule {}
