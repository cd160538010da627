declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot of a key (honours {hash tags}). */
  function calculateSlot(key: string): number;
  export default calculateSlot;
}
