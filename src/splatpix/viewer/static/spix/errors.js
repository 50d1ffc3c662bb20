// The one error type of the .spix decoder (mirrors splatpix.errors.SplatpixError on the decode path).
//
// Every problem with the input -- not a .spix file, corrupt, truncated, over the budget, needs a newer
// splatpix -- is a SpixError with a one-line message, as Python's decoder raises SplatpixError. Anything else
// thrown by this package is a bug.

export class SpixError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SpixError';
  }
}

/** A SpixError "corrupt .spix file: <reason>" (Python: "<source>: corrupt .spix file: <reason>"). */
export function corrupt(reason) {
  return new SpixError(`corrupt .spix file: ${reason}`);
}

/**
 * `new Ctor(length)` for a typed array whose length the file declares (already checked against the budget),
 * with an allocation failure reported as a SpixError rather than a RangeError.
 */
export function allocate(Ctor, length) {
  try {
    return new Ctor(length);
  } catch (e) {
    if (e instanceof RangeError) {
      throw new SpixError(`not enough memory to decode this file (${length} values)`);
    }
    throw e;
  }
}
