/** How long an API token must be: generated ones have 32 characters; anything guessable is refused. */
export const MIN_API_TOKEN_LENGTH = 16;

/** Why `token` (already trimmed) cannot be the API token, or null. */
export function apiTokenProblem(token: string): string | null {
  return token.length < MIN_API_TOKEN_LENGTH ? `must be at least ${MIN_API_TOKEN_LENGTH} characters, got ${token.length}` : null;
}
