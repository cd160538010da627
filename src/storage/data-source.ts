// For the TypeORM CLI (`npx typeorm migration:show -d dist/storage/data-source.js`).
// Reads DATABASE_URL only; the service itself builds its DataSource in DatabaseService.
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from './data-source-options';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL must be set for the TypeORM CLI');
export default new DataSource(dataSourceOptions(url, 2));
