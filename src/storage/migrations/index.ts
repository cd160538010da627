import { InitialSchema1732200000000 } from './1732200000000-initial-schema';

/** Every migration, oldest first; the DataSource and the CLI both use this list. */
export const MIGRATIONS = [InitialSchema1732200000000];
